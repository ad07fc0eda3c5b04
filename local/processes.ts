import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** How a process ended: its exit code, or the signal that ended it. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** "exit code 1", "signal SIGKILL". */
export function describeExit(exit: ProcessExit): string {
  return exit.signal ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/** A process that never said it was ready: it exited (`exit`), or was killed past its time or when asked to stop. */
export class NotReadyError extends Error {
  override readonly name = 'NotReadyError';
  constructor(
    message: string,
    readonly exit?: ProcessExit,
  ) {
    super(message);
  }
}

export interface Started<T> {
  child: ChildProcess;
  info: T;
  /** Sends SIGTERM (or the given signal) and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts a TypeScript entry point of this project as its own process and waits for the line
 * `<readyPrefix> <json>` on its stdout. Its stderr goes to `onStderr` line by line.
 */
export function startTsProcess<T>(options: {
  entry: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  readyPrefix: string;
  timeoutMs?: number;
  onStderr?: (line: string) => void;
  /** Aborted before the process is ready: it is killed, and the promise rejects. */
  signal?: AbortSignal;
}): Promise<Started<T>> {
  // Where a process that is not ready in time writes what it was doing when asked (SIGUSR2): see whereItWas.
  const reports = mkdtempSync(path.join(tmpdir(), 'stratoplane-not-ready-'));
  const diagnostics = ['--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reports}`];
  const child = spawn(process.execPath, [...diagnostics, '--import', 'tsx', path.join(projectRoot, options.entry), ...(options.args ?? [])], {
    cwd: projectRoot,
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stderr: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr.push(line);
    if (stderr.length > 50) stderr.shift();
    options.onStderr?.(line);
  });
  const stop = (signal: NodeJS.Signals = 'SIGTERM') =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill(signal);
    });

  return new Promise((resolve, reject) => {
    const timer = setTimeout(async () => {
      const where = await whereItWas(child, reports);
      child.kill('SIGKILL');
      reject(new NotReadyError(`${options.entry} was not ready within ${(options.timeoutMs ?? 60_000) / 1000}s (${where}):\n${stderr.join('\n')}`));
    }, options.timeoutMs ?? 60_000);
    child.once('exit', () => rmSync(reports, { recursive: true, force: true }));
    const onAbort = () => {
      clearTimeout(timer);
      child.kill('SIGTERM');
      reject(new NotReadyError(`${options.entry} was stopped before it was ready`));
    };
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (!line.startsWith(`${options.readyPrefix} `)) return;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ child, info: JSON.parse(line.slice(options.readyPrefix.length + 1)) as T, stop });
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(new NotReadyError(`${options.entry} exited (${signal ?? code}) before it was ready:\n${stderr.join('\n')}`, { code, signal }));
    });
  });
}

/** Whether a process of that id still runs (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * What a process that never said it was ready was doing: its JavaScript stack and the handles its
 * event loop waited on, from the diagnostic report it writes on SIGUSR2 (an agent that printed
 * nothing for a minute left nothing else to go on). No report within 3 s: its main thread never
 * got back to its event loop.
 */
async function whereItWas(child: ChildProcess, reports: string): Promise<string> {
  const load = `load average ${loadavg()[0]!.toFixed(1)}`;
  if (!child.kill('SIGUSR2')) return `${load}; it could not be signalled`;
  for (let waited = 0; waited < 3000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const file = readdirSync(reports).find((name) => name.endsWith('.json'));
    if (!file) continue;
    try {
      const report = JSON.parse(readFileSync(path.join(reports, file), 'utf8')) as {
        javascriptStack?: { stack?: string[] };
        libuv?: { type: string; is_active?: boolean; remoteEndpoint?: { host: string; port: number } }[];
      };
      const stack = (report.javascriptStack?.stack ?? []).slice(0, 12).join(' | ');
      const waiting = (report.libuv ?? [])
        .filter((handle) => handle.is_active)
        .map((handle) => (handle.remoteEndpoint ? `${handle.type} to ${handle.remoteEndpoint.host}:${handle.remoteEndpoint.port}` : handle.type));
      return `${load}; its stack: ${stack || 'none (idle in its event loop)'}; waiting on: ${waiting.join(', ') || 'nothing'}`;
    } catch {
      // Still being written.
    }
  }
  return `${load}; no diagnostic report within 3 s: its main thread never got back to its event loop`;
}
