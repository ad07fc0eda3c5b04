import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withInstallLock } from '../install-lock.ts';
import { findJdk, findMaven, findPython, LocalAwsSetupError } from './toolchain.ts';

/**
 * Installs LocalStack into the git-ignored .local-aws/ so that it runs as a plain host process
 * (no Docker) and downloads nothing when it starts:
 *
 *   venv/    localstack-core and its dependencies from PyPI (pinned: localstack-*.txt)
 *   lib/     LocalStack's "var libs" directory, pre-filled with what it would otherwise download:
 *            java/21 -> the system JDK (LocalStack wants a Java 21 it downloads; DynamoDB Local 2 runs on 17),
 *            dynamodb-local/2/ -> DynamoDB Local from Maven Central, a launcher DynamoDBLocal.jar
 *            and the Java agent LocalStack always passes (ddb-local-loader/DynamoDbLocalAgent.java)
 *   static/  LocalStack's "static libs" directory, holding its service catalog index, built once here
 *            (else every start spends ~2 s building it)
 *   m2/      Maven's repository for that download, so nothing lands in ~/.m2
 *   run/     one filesystem root per running LocalStack (see prepareFilesystemRoot)
 *
 * A stamp file records what was installed; each part is redone only when its pinned versions
 * (or inputs) change, so a second run costs a few stat calls.
 */
export const LOCALSTACK_VERSION = '2026.3.0';
export const DYNAMODB_LOCAL_VERSION = '2.6.1';
const JAVASSIST_VERSION = '3.30.2-GA';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');
export const installDir = path.join(projectRoot, '.local-aws');
export const venvPython = path.join(installDir, 'venv', 'bin', 'python');
/** LocalStack's config.dirs.var_libs; each LocalStack instance links its own filesystem root to it. */
const varLibs = path.join(installDir, 'lib');
const staticLibs = path.join(installDir, 'static');
const ddbDir = path.join(varLibs, 'dynamodb-local', '2');
const javaLink = path.join(varLibs, 'java', '21');
const buildDir = path.join(installDir, 'build');
const stampFile = path.join(installDir, 'installed.json');
const logFile = path.join(installDir, 'install.log');
const lockDir = path.join(installDir, 'install.lock');

const requirementsFile = path.join(here, 'localstack-requirements.txt');
const constraintsFile = path.join(here, 'localstack-constraints.txt');
const agentSource = path.join(here, 'ddb-local-loader', 'DynamoDbLocalAgent.java');

interface Stamp {
  python?: string;
  dynamodbLocal?: string;
  javaHome?: string;
}

const sha = (...files: string[]) => {
  const hash = createHash('sha256');
  for (const file of files) hash.update(readFileSync(file));
  return hash.digest('hex').slice(0, 16);
};

/** What each part's stamp must say; a changed pin or input file reinstalls that part. */
const wanted = () => ({
  python: `localstack-core ${LOCALSTACK_VERSION} ${sha(requirementsFile, constraintsFile)}`,
  dynamodbLocal: `DynamoDBLocal ${DYNAMODB_LOCAL_VERSION} javassist ${JAVASSIST_VERSION} agent ${sha(agentSource)}`,
});

function readStamp(): Stamp {
  try {
    return JSON.parse(readFileSync(stampFile, 'utf8')) as Stamp;
  } catch {
    return {};
  }
}

function isInstalled(stamp: Stamp): boolean {
  const want = wanted();
  return (
    stamp.python === want.python &&
    existsSync(venvPython) &&
    stamp.dynamodbLocal === want.dynamodbLocal &&
    existsSync(path.join(ddbDir, 'DynamoDBLocal.jar')) &&
    !!stamp.javaHome &&
    existsSync(path.join(stamp.javaHome, 'bin', 'java')) &&
    existsSync(path.join(javaLink, 'bin', 'java'))
  );
}

/** Installs whatever part of LocalStack is missing or outdated; returns at once when all is in place. */
export async function ensureLocalStackInstalled(log: (message: string) => void = console.error): Promise<void> {
  if (isInstalled(readStamp())) return;
  mkdirSync(installDir, { recursive: true });
  await withInstallLock(
    { dir: lockDir, staleAfterMs: 20 * 60_000, waitingMessage: '[local-aws] another process is installing LocalStack; waiting for it' },
    log,
    () => {
      const stamp = readStamp();
      if (isInstalled(stamp)) return; // another process installed it while we waited
      const want = wanted();
      const started = Date.now();
      log(
        `[local-aws] installing LocalStack ${LOCALSTACK_VERSION} and DynamoDB Local ${DYNAMODB_LOCAL_VERSION} into .local-aws/ (first run only, about a minute; log: .local-aws/install.log)`,
      );
      const out = openSync(logFile, 'a');
      const save = () => writeFileSync(stampFile, `${JSON.stringify(stamp, null, 2)}\n`);
      try {
        writeSync(out, `\n=== ${new Date().toISOString()} install\n`);
        const step = (description: string, command: string, args: string[], cwd?: string, env?: NodeJS.ProcessEnv) => {
          writeSync(out, `\n--- ${new Date().toISOString()} ${description}: ${command} ${args.join(' ')}\n`);
          const result = spawnSync(command, args, { cwd, stdio: ['ignore', out, out], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1', ...env } });
          if (result.status !== 0) {
            throw new LocalAwsSetupError(
              `${description} failed (${result.error?.message ?? `exit ${result.status}`}); the end of .local-aws/install.log:\n${tail(logFile, 25)}`,
            );
          }
        };

        if (stamp.python !== want.python || !existsSync(venvPython)) {
          const python = findPython();
          delete stamp.python;
          save();
          step('creating the Python virtualenv', python, ['-m', 'venv', '--clear', path.join(installDir, 'venv')]);
          step('pip install LocalStack', venvPython, ['-m', 'pip', 'install', '--no-input', '-r', requirementsFile, '-c', constraintsFile]);
          rmSync(staticLibs, { recursive: true, force: true });
          mkdirSync(staticLibs, { recursive: true });
          const catalogRoot = path.join(installDir, 'build', 'catalog-root');
          rmSync(catalogRoot, { recursive: true, force: true });
          prepareFilesystemRoot(catalogRoot);
          step('building the service catalog index', venvPython, ['-m', 'localstack.aws.spec'], undefined, {
            OVERRIDE_IN_DOCKER: '0',
            FILESYSTEM_ROOT: catalogRoot,
          });
          rmSync(catalogRoot, { recursive: true, force: true });
          stamp.python = want.python;
          save();
        }

        const javaStale = !stamp.javaHome || !existsSync(path.join(stamp.javaHome, 'bin', 'java'));
        const jdk = javaStale || stamp.dynamodbLocal !== want.dynamodbLocal ? findJdk() : undefined;
        if (jdk) stamp.javaHome = jdk.home;
        // LocalStack runs DynamoDB Local with lib/java/21/bin/java and would download a JRE 21 if it were missing.
        mkdirSync(path.dirname(javaLink), { recursive: true });
        if (!existsSync(path.join(javaLink, 'bin', 'java')) || readlinkOrEmpty(javaLink) !== stamp.javaHome) {
          rmSync(javaLink, { force: true, recursive: true });
          symlinkSync(stamp.javaHome!, javaLink);
        }
        save();

        if (stamp.dynamodbLocal !== want.dynamodbLocal || !existsSync(path.join(ddbDir, 'DynamoDBLocal.jar'))) {
          const mvn = findMaven();
          const javaBin = path.join(stamp.javaHome!, 'bin');
          delete stamp.dynamodbLocal;
          save();
          rmSync(ddbDir, { recursive: true, force: true });
          rmSync(buildDir, { recursive: true, force: true });
          const libDir = path.join(ddbDir, 'DynamoDBLocal_lib');
          mkdirSync(libDir, { recursive: true });
          mkdirSync(buildDir, { recursive: true });

          // DynamoDB Local, its dependencies (with sqlite4java's native libraries) and javassist, from Maven Central
          // rather than the CloudFront zip LocalStack would fetch.
          writeFileSync(path.join(buildDir, 'pom.xml'), pom());
          step(
            'mvn: fetching DynamoDB Local',
            mvn,
            [
              '-B',
              '--no-transfer-progress',
              `-Dmaven.repo.local=${path.join(installDir, 'm2')}`,
              'dependency:copy-dependencies',
              `-DoutputDirectory=${libDir}`,
            ],
            buildDir,
          );
          const javassist = readdirSync(libDir).find((name) => name.startsWith('javassist-'));
          if (!javassist) throw new LocalAwsSetupError(`javassist is missing from ${libDir} after the Maven download`);
          renameSync(path.join(libDir, javassist), path.join(ddbDir, 'javassist.jar'));

          // The -javaagent jar LocalStack always passes; see DynamoDbLocalAgent.java.
          const classes = path.join(buildDir, 'agent-classes');
          mkdirSync(classes);
          step('javac DynamoDbLocalAgent', path.join(javaBin, 'javac'), ['-d', classes, '-cp', path.join(ddbDir, 'javassist.jar'), agentSource]);
          writeFileSync(path.join(buildDir, 'agent.mf'), 'Premain-Class: stratoplane.ddblocal.DynamoDbLocalAgent\nClass-Path: javassist.jar\n');
          step('jar ddb-local-loader', path.join(javaBin, 'jar'), [
            'cfm',
            path.join(ddbDir, 'ddb-local-loader-0.1.jar'),
            path.join(buildDir, 'agent.mf'),
            '-C',
            classes,
            '.',
          ]);

          // LocalStack runs `java -jar DynamoDBLocal.jar`: an empty jar whose manifest puts the Maven jars on the class path.
          const jars = readdirSync(libDir)
            .filter((name) => name.endsWith('.jar'))
            .sort()
            .map((name) => `DynamoDBLocal_lib/${name}`);
          writeFileSync(
            path.join(buildDir, 'launcher.mf'),
            manifest({
              'Main-Class': 'com.amazonaws.services.dynamodbv2.local.main.ServerRunner',
              'Class-Path': ['.', ...jars].join(' '),
            }),
          );
          const empty = path.join(buildDir, 'empty');
          mkdirSync(empty);
          step('jar DynamoDBLocal launcher', path.join(javaBin, 'jar'), [
            'cfm',
            path.join(ddbDir, 'DynamoDBLocal.jar.tmp'),
            path.join(buildDir, 'launcher.mf'),
            '-C',
            empty,
            '.',
          ]);
          renameSync(path.join(ddbDir, 'DynamoDBLocal.jar.tmp'), path.join(ddbDir, 'DynamoDBLocal.jar')); // LocalStack's "installed" marker: last
          stamp.dynamodbLocal = want.dynamodbLocal;
          save();
        }
        log(`[local-aws] installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      } finally {
        closeSync(out);
      }
    },
  );
}

/**
 * Makes `root` a LocalStack FILESYSTEM_ROOT (host mode) that uses the installed libraries: its own
 * tmp, state and cache, so several LocalStacks can run side by side, and links to lib/ and static/.
 */
export function prepareFilesystemRoot(root: string): void {
  mkdirSync(path.join(root, 'var', 'lib', 'localstack'), { recursive: true });
  mkdirSync(path.join(root, 'usr', 'lib'), { recursive: true });
  symlinkSync(varLibs, path.join(root, 'var', 'lib', 'localstack', 'lib'));
  symlinkSync(staticLibs, path.join(root, 'usr', 'lib', 'localstack'));
}

function pom(): string {
  const dependency = (group: string, artifact: string, version: string) =>
    `    <dependency><groupId>${group}</groupId><artifactId>${artifact}</artifactId><version>${version}</version></dependency>`;
  return `<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.stratoplane</groupId><artifactId>dynamodb-local-for-localstack</artifactId><version>1</version>
  <dependencies>
${dependency('com.amazonaws', 'DynamoDBLocal', DYNAMODB_LOCAL_VERSION)}
${dependency('org.javassist', 'javassist', JAVASSIST_VERSION)}
  </dependencies>
</project>
`;
}

/** A jar manifest: lines of at most 72 bytes, continued on lines that start with a space. */
function manifest(attributes: Record<string, string>): string {
  const lines: string[] = ['Manifest-Version: 1.0'];
  for (const [name, value] of Object.entries(attributes)) {
    const line = `${name}: ${value}`;
    lines.push(line.slice(0, 72));
    for (let at = 72; at < line.length; at += 71) lines.push(` ${line.slice(at, at + 71)}`);
  }
  return `${lines.join('\n')}\n`;
}

function readlinkOrEmpty(file: string): string {
  try {
    return readlinkSync(file);
  } catch {
    return '';
  }
}

function tail(file: string, lines: number): string {
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}
