import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, openSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The local AWS: moto in server mode, installed from PyPI into a project-local virtualenv and run
 * as a plain process (no Docker). See README "Local AWS" for why moto and not LocalStack here.
 */
export const MOTO_REQUIREMENT = 'moto[server]==5.2.5';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const installDir = path.join(projectRoot, '.local-aws');
const venv = path.join(installDir, 'venv');
const venvPython = path.join(venv, 'bin', 'python');
const marker = path.join(installDir, 'installed.txt');
const launcher = path.join(projectRoot, 'local', 'aws', 'moto_launcher.py');

export class LocalAwsSetupError extends Error {}

function findPython(): string {
  for (const candidate of [process.env.STRATOPLANE_PYTHON, 'python3', 'python'].filter(Boolean) as string[]) {
    const probe = spawnSync(candidate, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { encoding: 'utf8' });
    if (probe.status !== 0) continue;
    const [major, minor] = probe.stdout.trim().split('.').map(Number) as [number, number];
    if (major === 3 && minor >= 9) return candidate;
  }
  throw new LocalAwsSetupError(
    'The local AWS needs Python 3.9 or newer with venv and pip, and none was found.\n' +
      'Install it (Debian/Ubuntu: apt-get install python3 python3-venv python3-pip; macOS: brew install python),\n' +
      'or point STRATOPLANE_PYTHON at one, or run against LocalStack: AWS_ENDPOINT_URL=http://localhost:4566 npm test',
  );
}

/** Installs moto into .local-aws/venv once; later calls return at once. */
export function ensureLocalAwsInstalled(log: (message: string) => void = console.error): void {
  if (existsSync(marker) && readFileSync(marker, 'utf8').trim() === MOTO_REQUIREMENT && existsSync(venvPython)) return;
  const python = findPython();
  mkdirSync(installDir, { recursive: true });
  log(`[local-aws] installing ${MOTO_REQUIREMENT} into ${path.relative(projectRoot, venv)} (first run only)`);
  const created = spawnSync(python, ['-m', 'venv', '--clear', venv], { stdio: 'inherit' });
  if (created.status !== 0) {
    throw new LocalAwsSetupError(`'${python} -m venv' failed: install the venv module (Debian/Ubuntu: apt-get install python3-venv)`);
  }
  const installed = spawnSync(venvPython, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', MOTO_REQUIREMENT], { stdio: 'inherit' });
  if (installed.status !== 0) throw new LocalAwsSetupError(`pip could not install ${MOTO_REQUIREMENT}: see the pip output above`);
  writeFileSync(marker, `${MOTO_REQUIREMENT}\n`);
}

export interface LocalAws {
  endpoint: string;
  /** True when this call started the emulator (and stop() will end it). */
  started: boolean;
  process?: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Uses AWS_ENDPOINT_URL when it is set (e.g. a LocalStack container), otherwise installs and
 * starts moto on 127.0.0.1, waiting until it answers.
 */
export async function startLocalAws(options: { port?: number; logFile?: string; log?: (message: string) => void } = {}): Promise<LocalAws> {
  const log = options.log ?? console.error;
  const existing = process.env.AWS_ENDPOINT_URL;
  if (existing) {
    await waitUntilServing(existing, 10_000, undefined);
    return { endpoint: existing, started: false, stop: async () => {} };
  }
  ensureLocalAwsInstalled(log);
  const port = options.port ?? (await freePort());
  const endpoint = `http://127.0.0.1:${port}`;
  const output = options.logFile ? openSync(options.logFile, 'a') : 'ignore';
  const child = spawn(venvPython, [launcher, '--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', output, output],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  await waitUntilServing(endpoint, 60_000, child);
  return {
    endpoint,
    started: true,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

async function waitUntilServing(endpoint: string, timeoutMs: number, child: ChildProcess | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new LocalAwsSetupError(`the local AWS exited with code ${child.exitCode} before serving`);
    try {
      // Any HTTP answer means the server is up; SQS's ListQueues is cheap on every emulator.
      const response = await fetch(`${endpoint}/?Action=ListQueues`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      return;
    } catch (error) {
      lastError = (error as Error).message;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw new LocalAwsSetupError(`no local AWS answered at ${endpoint} within ${timeoutMs / 1000}s (${lastError})`);
}
