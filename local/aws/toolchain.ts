import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Finds the host tools the LocalStack install needs: Python 3.13 (LocalStack's runtime), a JDK 17+
 * with javac (DynamoDB Local runs on it; javac builds its Java agent) and Maven (fetches DynamoDB
 * Local from Maven Central). Each failure names exactly what to install.
 */
export class LocalAwsSetupError extends Error {}

const run = (command: string, args: string[]) => spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });

/** The major.minor of a Python executable and its real path, or undefined if it does not run. */
function probePython(candidate: string): { version: [number, number]; executable: string } | undefined {
  const probe = run(candidate, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2]); print(sys.executable)']);
  if (probe.status !== 0) return undefined;
  const [version, executable] = probe.stdout.trim().split('\n');
  const [major, minor] = (version ?? '').split('.').map(Number) as [number, number];
  return { version: [major, minor], executable: executable || candidate };
}

function pyenvRoots(): string[] {
  const roots = [process.env.PYENV_ROOT, run('pyenv', ['root']).stdout?.trim(), path.join(os.homedir(), '.pyenv')];
  return [...new Set(roots.filter((root): root is string => !!root))];
}

/** Python 3.13: STRATOPLANE_PYTHON, else `python3.13` on PATH, else a pyenv-installed 3.13.x. */
export function findPython(): string {
  const override = process.env.STRATOPLANE_PYTHON;
  if (override) {
    const probed = probePython(override);
    if (!probed) throw new LocalAwsSetupError(`STRATOPLANE_PYTHON=${override} does not run`);
    const [major, minor] = probed.version;
    if (major !== 3 || minor < 13) throw new LocalAwsSetupError(`STRATOPLANE_PYTHON=${override} is Python ${major}.${minor}; LocalStack needs 3.13`);
    return probed.executable;
  }
  const candidates = ['python3.13'];
  for (const root of pyenvRoots()) {
    const versions = path.join(root, 'versions');
    if (!existsSync(versions)) continue;
    // Newest 3.13.x first.
    const found = readdirSync(versions)
      .filter((name) => /^3\.13(\.\d+)?$/.test(name))
      .sort((a, b) => Number(b.split('.')[2] ?? 0) - Number(a.split('.')[2] ?? 0));
    candidates.push(...found.map((name) => path.join(versions, name, 'bin', 'python3.13')));
  }
  for (const candidate of candidates) {
    const probed = probePython(candidate);
    if (probed && probed.version[0] === 3 && probed.version[1] === 13) return probed.executable;
  }
  throw new LocalAwsSetupError(
    'Python 3.13 is required for LocalStack (the local AWS), and none was found (looked for python3.13 on PATH and in pyenv).\n' +
      'Install it: `pyenv install 3.13`, or Debian/Ubuntu with 3.13 packaged: `apt-get install python3.13 python3.13-venv`;\n' +
      'or point STRATOPLANE_PYTHON at one; or run against a LocalStack container: AWS_ENDPOINT_URL=http://localhost:4566 npm test',
  );
}

export interface Jdk {
  home: string;
  major: number;
}

const jdkHint = 'Install a JDK 17 or newer with javac (Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`) or set JAVA_HOME to one.';

/** A JDK 17+: JAVA_HOME, else the one `java` on PATH belongs to. javac and jar must be there too. */
export function findJdk(): Jdk {
  let home = process.env.JAVA_HOME;
  if (!home) {
    const which = run('sh', ['-c', 'command -v java']);
    const java = which.status === 0 ? which.stdout.trim() : '';
    if (!java) throw new LocalAwsSetupError(`LocalStack runs DynamoDB Local on Java, and no \`java\` is on PATH. ${jdkHint}`);
    // /usr/bin/java -> /etc/alternatives/java -> /usr/lib/jvm/<jdk>/bin/java
    home = path.dirname(path.dirname(realpathSync(java)));
  }
  for (const tool of ['java', 'javac', 'jar']) {
    if (!existsSync(path.join(home, 'bin', tool))) {
      throw new LocalAwsSetupError(`${path.join(home, 'bin', tool)} is missing: ${home} is not a full JDK. ${jdkHint}`);
    }
  }
  const version = run(path.join(home, 'bin', 'javac'), ['-version']);
  const major = Number(/javac (\d+)/.exec(`${version.stdout}${version.stderr}`)?.[1] ?? 0);
  if (major < 17) throw new LocalAwsSetupError(`the JDK at ${home} is version ${major || 'unknown'}; DynamoDB Local needs 17 or newer. ${jdkHint}`);
  return { home, major };
}

/** Maven, which fetches DynamoDB Local and javassist from Maven Central. */
export function findMaven(): string {
  const probe = run('mvn', ['--version']);
  if (probe.status === 0) return 'mvn';
  throw new LocalAwsSetupError(
    'Maven is required to fetch DynamoDB Local from Maven Central for LocalStack, and `mvn` is not on PATH.\n' +
      'Install it: Debian/Ubuntu `apt-get install maven`, macOS `brew install maven`.',
  );
}
