import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureLocalStackInstalled, installDir, LOCALSTACK_VERSION, prepareFilesystemRoot, venvPython } from './install.ts';
import { AwsProxy } from './aws-proxy.ts';
import { isAlive } from '../processes.ts';
import { LocalAwsSetupError } from './toolchain.ts';

export { LocalAwsSetupError } from './toolchain.ts';

/**
 * The local AWS: LocalStack (localstack-core from PyPI) run as a plain host process, no Docker.
 * It serves DynamoDB (DynamoDB Local on the system JDK, with its native streams), DynamoDB Streams,
 * SQS and KMS on one port. See install.ts for what is installed where, and README "Local AWS".
 */
const launcher = path.join(path.dirname(fileURLToPath(import.meta.url)), 'localstack_launcher.py');
const SERVICES = ['dynamodb', 'dynamodbstreams', 'sqs', 'kms', 's3'];
/** One LocalStack filesystem root per running instance. */
const runDir = path.join(installDir, 'run');

export interface LocalAws {
  endpoint: string;
  /** True when this call started the emulator (and stop() will end it). */
  started: boolean;
  /** What serves the endpoint, for banners: "LocalStack 2026.3.0" or "AWS_ENDPOINT_URL". */
  description: string;
  process?: ChildProcess;
  /** Between every caller and the emulator, when asked for: counts calls, makes outages (tests, benches). */
  proxy?: AwsProxy;
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
 * LocalStack's configuration: only these services, on 127.0.0.1, downloading nothing. Queue URLs
 * it hands out name `advertisedPort`: the proxy's, when one stands in front of it.
 */
function localStackEnv(port: number, advertisedPort: number, filesystemRoot: string, services: readonly string[]): NodeJS.ProcessEnv {
  const address = `127.0.0.1:${port}`;
  return {
    // A clean environment: LocalStack reads hundreds of variables (DEBUG, SERVICES, PERSISTENCE, ...).
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: process.env.LANG ?? 'C.UTF-8',
    PYTHONUNBUFFERED: '1',
    // This machine may look like a container to LocalStack; host mode keeps every path under FILESYSTEM_ROOT.
    OVERRIDE_IN_DOCKER: '0',
    FILESYSTEM_ROOT: filesystemRoot,
    GATEWAY_LISTEN: address,
    // Queue URLs LocalStack hands out point here (the default, *.localhost.localstack.cloud, needs public DNS).
    LOCALSTACK_HOST: `127.0.0.1:${advertisedPort}`,
    SQS_ENDPOINT_STRATEGY: 'path',
    SERVICES: services.join(','),
    // Start the providers (and the DynamoDB Local JVM) now rather than on each service's first request.
    EAGER_SERVICE_LOADING: '1',
    // v2: DynamoDB Local's own streams, instead of v1's copy through Kinesis (kinesis-mock, fetched from npm).
    PROVIDER_OVERRIDE_DYNAMODB: 'v2',
    PROVIDER_OVERRIDE_DYNAMODBSTREAMS: 'v2',
    DYNAMODB_IN_MEMORY: '1',
    DNS_ADDRESS: '0',
    SKIP_SSL_CERT_DOWNLOAD: '1',
    DISABLE_EVENTS: '1',
    LOCALSTACK_TELEMETRY_DISABLED: '1',
  };
}

/**
 * Uses AWS_ENDPOINT_URL when it is set (e.g. a LocalStack container), otherwise installs LocalStack
 * (first run only) and starts it on 127.0.0.1, waiting until all four services answer.
 */
export interface LocalAwsOptions {
  port?: number;
  logFile?: string;
  log?: (message: string) => void;
  proxy?: boolean;
  /** Services beyond the five every run needs (e.g. CloudFormation for `npm run deploy:local`); readiness waits for them too. */
  extraServices?: readonly string[];
  /** More LocalStack settings, given the instance's filesystem root; they win over the defaults. */
  extraEnv?: (filesystemRoot: string) => NodeJS.ProcessEnv;
  /** Start a LocalStack of its own even when AWS_ENDPOINT_URL is set (what it needs is set up only there). */
  ignoreEndpointUrl?: boolean;
  /** Aborted before it serves: it is stopped, and the promise rejects. */
  signal?: AbortSignal;
}

export async function startLocalAws(options: LocalAwsOptions = {}): Promise<LocalAws> {
  const log = options.log ?? console.error;
  const existing = options.ignoreEndpointUrl ? undefined : process.env.AWS_ENDPOINT_URL;
  if (existing) {
    await waitUntilServing(existing, 10_000);
    return { endpoint: existing, started: false, description: 'AWS_ENDPOINT_URL', stop: async () => {} };
  }
  await ensureLocalStackInstalled(log);
  options.signal?.throwIfAborted();
  if (options.port) await assertPortFree(options.port);
  // With a proxy, callers use its port (bound first, so nothing else takes it) and LocalStack listens on one of its own.
  const localStackPort = options.proxy || !options.port ? await freePort() : options.port;
  const localStackUrl = `http://127.0.0.1:${localStackPort}`;
  const proxy = options.proxy ? await AwsProxy.start(localStackUrl, options.port ?? 0) : undefined;
  const port = proxy ? Number(new URL(proxy.url).port) : localStackPort;

  // Each instance gets its own filesystem root, so `npm start` and `npm test` can run side by side.
  removeStaleRoots();
  const root = mkdtempSync(path.join(runDir, `${port}-`));
  prepareFilesystemRoot(root);
  const logFile = options.logFile ?? path.join(root, 'localstack.log');
  const output = openSync(logFile, 'a');
  // Its own process group (detached), so stop() can signal LocalStack and everything it started.
  const services = [...SERVICES, ...(options.extraServices ?? [])];
  const env = { ...localStackEnv(localStackPort, port, root, services), ...options.extraEnv?.(root) };
  const child = spawn(venvPython, [launcher], { stdio: ['pipe', output, output], env, detached: true });
  closeSync(output);
  writeFileSync(path.join(root, 'pid'), `${child.pid}\n`);
  child.stdin!.on('error', () => {}); // EPIPE once it has gone

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= Promise.all([proxy?.close(), stopProcessTree(child)]).then(() => rmSync(root, { recursive: true, force: true })));
  try {
    await waitUntilReady(localStackUrl, 180_000, child, logFile, services, options.signal);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    endpoint: proxy?.url ?? localStackUrl,
    started: true,
    description: `LocalStack ${LOCALSTACK_VERSION}${proxy ? ', behind a counting proxy' : ''}`,
    process: child,
    proxy,
    stop,
  };
}

/** A fixed port already taken would make the readiness probe talk to whatever holds it. */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new LocalAwsSetupError(
          error.code === 'EADDRINUSE'
            ? `port ${port} is already in use (another LocalStack or \`npm start\`?): stop it, or choose another port with STRATOPLANE_LOCAL_AWS_PORT`
            : `cannot listen on 127.0.0.1:${port}: ${error.message}`,
        ),
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

/** Filesystem roots left behind by a LocalStack whose parent died without stop(); it ends on its own then. */
function removeStaleRoots(): void {
  mkdirSync(runDir, { recursive: true });
  for (const name of readdirSync(runDir)) {
    const root = path.join(runDir, name);
    try {
      const pid = Number(readFileSync(path.join(root, 'pid'), 'utf8'));
      if (pid && isAlive(pid)) continue;
    } catch {
      if (Date.now() - statSync(root).mtimeMs < 60_000) continue; // being set up right now
    }
    rmSync(root, { recursive: true, force: true });
  }
}

/** Waits until `probe` succeeds, failing early if `child` exits. */
async function waitFor(
  endpoint: string,
  timeoutMs: number,
  probe: () => Promise<void>,
  child?: ChildProcess,
  logFile?: string,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastProblem = 'no answer';
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    if (child && child.exitCode !== null) {
      throw new LocalAwsSetupError(`LocalStack exited with code ${child.exitCode} before serving; the end of ${logFile}:\n${tail(logFile)}`);
    }
    try {
      return await probe();
    } catch (error) {
      lastProblem = (error as Error).message;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  throw new LocalAwsSetupError(
    `no local AWS answered at ${endpoint} within ${timeoutMs / 1000}s (${lastProblem})${logFile ? `; the end of ${logFile}:\n${tail(logFile)}` : ''}`,
  );
}

/** An emulator given by AWS_ENDPOINT_URL: any HTTP answer means it is up; SQS's ListQueues is cheap on every emulator. */
async function waitUntilServing(endpoint: string, timeoutMs: number): Promise<void> {
  await waitFor(endpoint, timeoutMs, async () => {
    const response = await fetch(`${endpoint}/?Action=ListQueues`, { signal: AbortSignal.timeout(2000) });
    await response.arrayBuffer();
  });
}

/** The LocalStack started here: the health endpoint lists every service as ready, and DynamoDB answers a call. */
async function waitUntilReady(
  endpoint: string,
  timeoutMs: number,
  child: ChildProcess,
  logFile: string,
  services: readonly string[],
  signal: AbortSignal | undefined,
): Promise<void> {
  await waitFor(
    endpoint,
    timeoutMs,
    async () => {
      const health = (await (await fetch(`${endpoint}/_localstack/health`, { signal: AbortSignal.timeout(2000) })).json()) as {
        services?: Record<string, string>;
      };
      const waitingFor = services.filter((service) => !['available', 'running'].includes(health.services?.[service] ?? ''));
      if (waitingFor.length) throw new Error(`not ready: ${waitingFor.map((service) => `${service}=${health.services?.[service]}`).join(', ')}`);
      // DynamoDB is served by a JVM that LocalStack starts separately; only a real call shows it is up.
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': 'DynamoDB_20120810.ListTables',
          authorization: 'AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
        },
        body: '{}',
        signal: AbortSignal.timeout(10_000),
      });
      const body = await response.text();
      if (!response.ok) throw new Error(`DynamoDB ListTables: ${response.status} ${body.slice(0, 200)}`);
    },
    child,
    logFile,
    signal,
  );
}

/**
 * Ends LocalStack and every process it started. LocalStack stops DynamoDB Local itself on SIGTERM,
 * but runs it in a session of its own, beyond a signal to LocalStack's group: the JVM (and any other
 * descendant) is looked up first and killed afterwards if it is still there.
 */
async function stopProcessTree(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  const descendants = descendantsOf(pid);
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));
  signalGroup(pid, 'SIGTERM');
  if (!(await within(exited, 15_000))) signalGroup(pid, 'SIGKILL');
  await exited;
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const alive = descendants.filter(isAlive);
    if (!alive.length) return;
    for (const other of alive) signalGroup(other, signal);
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && descendants.some(isAlive)) await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function descendantsOf(root: number): number[] {
  const listing = spawnSync('ps', ['-A', '-o', 'pid=,ppid='], { encoding: 'utf8' });
  const children = new Map<number, number[]>();
  for (const line of listing.stdout?.split('\n') ?? []) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (pid && ppid) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length) {
    for (const next of children.get(queue.shift()!) ?? []) {
      found.push(next);
      queue.push(next);
    }
  }
  return found;
}

/** Signals the process group led by `pid` or, if it leads none, the process itself. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function tail(file: string | undefined, lines = 30): string {
  if (!file || !existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}
