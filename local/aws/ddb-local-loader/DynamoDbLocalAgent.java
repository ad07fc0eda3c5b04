package stratoplane.ddblocal;

import java.io.ByteArrayInputStream;
import java.lang.instrument.ClassFileTransformer;
import java.lang.instrument.Instrumentation;
import java.security.ProtectionDomain;
import javassist.ClassPool;
import javassist.CtClass;
import javassist.LoaderClassPath;
import javassist.bytecode.CodeIterator;
import javassist.bytecode.Opcode;

/**
 * Stands in for LocalStack's `ddb-local-loader-0.1.jar`. LocalStack always starts DynamoDB Local
 * with `-javaagent:<install dir>/ddb-local-loader-0.1.jar`, so the JVM does not start without a
 * jar of that name; the original is published only on GitHub (not on Maven Central), which this
 * project cannot download from. It changes two things in DynamoDB Local as it loads:
 * <ul>
 * <li>DynamoDB Local refuses more than 20 global secondary indexes per table, AWS allows more, so
 * the limit in CreateTableFunction is raised to 100 (what the original agent does);</li>
 * <li>DynamoDB Local has no option for the address it listens on and takes every interface, with
 * no authentication: its Jetty connector is given 127.0.0.1 when no host was set, so only this
 * machine reaches it (LocalStack talks to it on localhost).</li>
 * </ul>
 * Compiled against javassist (from Maven Central) when the local AWS is installed; see
 * local/aws/install.ts.
 */
public final class DynamoDbLocalAgent {
  private static final String CREATE_TABLE = "com/amazonaws/services/dynamodbv2/local/shared/access/api/cp/CreateTableFunction";
  private static final String CONNECTOR = "org/eclipse/jetty/server/ServerConnector";

  public static void premain(String arguments, Instrumentation instrumentation) {
    instrumentation.addTransformer(new ClassFileTransformer() {
      @Override
      public byte[] transform(ClassLoader loader, String name, Class<?> redefined, ProtectionDomain domain, byte[] bytes) {
        if (!CREATE_TABLE.equals(name) && !CONNECTOR.equals(name)) return null;
        try {
          ClassPool pool = new ClassPool(true);
          if (loader != null) pool.appendClassPath(new LoaderClassPath(loader));
          CtClass type = pool.makeClass(new ByteArrayInputStream(bytes));
          if (CREATE_TABLE.equals(name)) raiseIndexLimit(type);
          // openAcceptChannel binds to getHost(), every interface when null.
          else type.getDeclaredMethod("openAcceptChannel").insertBefore("if (getHost() == null) setHost(\"127.0.0.1\");");
          byte[] patched = type.toBytecode();
          type.detach();
          return patched;
        } catch (Throwable error) {
          error.printStackTrace();
          return null;
        }
      }
    });
  }

  private static void raiseIndexLimit(CtClass type) throws Exception {
    CodeIterator code = type.getDeclaredMethod("apply").getMethodInfo().getCodeAttribute().iterator();
    while (code.hasNext()) {
      int at = code.next();
      // `bipush 20` is the GSI limit; no other 20 is pushed in this method.
      if (code.byteAt(at) == Opcode.BIPUSH && code.byteAt(at + 1) == 20) code.writeByte(100, at + 1);
    }
  }
}
