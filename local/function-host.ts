import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

export interface FunctionSpec {
  logicalId: string;
  functionName: string;
  assetDir: string;
  handler: string;
  environment: Record<string, string>;
  timeoutSeconds: number;
  memorySize: number;
}

export class FunctionError extends Error {
  constructor(
    readonly functionName: string,
    readonly errorType: string,
    readonly errorMessage: string,
    readonly remoteStack?: string,
  ) {
    super(`${functionName} failed: ${errorType}: ${errorMessage}`);
    this.name = 'FunctionError';
  }
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  startedAt: number;
}

const workerScript = fileURLToPath(new URL('./lambda-worker.mjs', import.meta.url));

/**
 * One function, loaded from its CDK bundle into a worker thread with the function's own
 * environment. Invocations run concurrently in it and are cut off at the function's timeout.
 */
export class LocalFunction {
  private readonly worker: Worker;
  private readonly pending = new Map<string, Pending>();
  readonly ready: Promise<void>;
  /** Invocations, the records they carried (event source batches), the failed ones, and the time they ran in all (ms), since start. */
  readonly stats = { invocations: 0, records: 0, errors: 0, durationMs: 0 };

  constructor(readonly spec: FunctionSpec) {
    this.worker = new Worker(workerScript, {
      env: spec.environment,
      workerData: {
        functionName: spec.functionName,
        assetDir: spec.assetDir,
        handler: spec.handler,
        memorySize: spec.memorySize,
        logGroupName: `/aws/lambda/${spec.functionName}`,
      },
      execArgv: ['--enable-source-maps'],
    });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject);
      this.worker.once('message', () => resolve());
    });
    this.worker.on('message', (message: { id?: string; result?: unknown; error?: { errorType: string; errorMessage: string; stack?: string } }) => {
      if (!message.id) return;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      this.stats.durationMs += performance.now() - pending.startedAt;
      if (message.error) {
        this.stats.errors++;
        pending.reject(new FunctionError(spec.functionName, message.error.errorType, message.error.errorMessage, message.error.stack));
      } else pending.resolve(message.result);
    });
    this.worker.on('error', (error) => {
      for (const [id, pending] of this.pending) {
        clearTimeout(pending.timer);
        pending.reject(new FunctionError(spec.functionName, 'Runtime.WorkerCrashed', error.message));
        this.pending.delete(id);
      }
    });
  }

  invoke<T = unknown>(event: unknown): Promise<T> {
    const id = randomUUID();
    this.stats.invocations++;
    this.stats.records += (event as { Records?: unknown[] } | undefined)?.Records?.length ?? 0;
    const timeoutMs = this.spec.timeoutSeconds * 1000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new FunctionError(this.spec.functionName, 'Sandbox.Timedout', `Task timed out after ${this.spec.timeoutSeconds}.00 seconds`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer, startedAt: performance.now() });
      this.worker.postMessage({ id, event, deadline: Date.now() + timeoutMs, requestId: id });
    });
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}
