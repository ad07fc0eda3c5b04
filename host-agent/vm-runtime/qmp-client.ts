import { EventEmitter } from 'node:events';
import net from 'node:net';

/** A QMP error answer: QEMU refused the command (`class` as QEMU names it, e.g. `GenericError`). */
export class QmpError extends Error {
  override readonly name = 'QmpError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${description}`);
  }
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * QEMU's machine protocol over its unix socket: one JSON object a line, commands answered in order
 * by `id`, asynchronous events in between (`STOP`, `RESUME`, `SHUTDOWN`, `MIGRATION`, ...).
 * Emits `event` for each QEMU event and `close` when the socket closes (QEMU exited).
 */
export class QmpClient extends EventEmitter<{ event: [QmpEvent]; close: [] }> {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closed = false;

  private constructor(private readonly socket: net.Socket) {
    super();
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('close', () => {
      this.closed = true;
      for (const pending of this.pending.values()) {
        clearTimeout(pending.timer);
        pending.reject(new Error(`QMP ${pending.command}: QEMU closed its monitor`));
      }
      this.pending.clear();
      this.emit('close');
    });
    socket.on('error', () => {
      // 'close' follows and settles what is pending.
    });
  }

  /** Connects (retrying while QEMU creates the socket), reads the greeting and leaves capabilities negotiation. */
  static async connect(socketPath: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const attempt = net.connect(socketPath, () => resolve(attempt));
          attempt.once('error', reject);
        });
        const client = new QmpClient(socket);
        await client.greeting(Math.max(1_000, deadline - Date.now()));
        await client.execute('qmp_capabilities');
        return client;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`QMP at ${socketPath}: ${(error as Error).message}`);
        // QEMU makes its socket within tens of ms of starting: look again soon, the guest may be waiting on it.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }

  private greetingWaiter?: { resolve: () => void; reject: (error: Error) => void };

  private greeting(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no QMP greeting')), timeoutMs);
      this.greetingWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject,
      };
    });
  }

  private receive(chunk: string) {
    this.buffer += chunk;
    for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (!line) continue;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // QEMU writes only JSON here; a torn line is not worth dying for
      }
      if ('QMP' in message) this.greetingWaiter?.resolve();
      else if ('event' in message) this.emit('event', message as unknown as QmpEvent);
      else if (typeof message.id === 'string') this.settle(message.id, message);
    }
  }

  private settle(id: string, message: Record<string, unknown>) {
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    const error = message.error as { class?: string; desc?: string } | undefined;
    if (error) pending.reject(new QmpError(pending.command, error.class ?? 'GenericError', error.desc ?? 'refused'));
    else pending.resolve(message.return);
  }

  /** Runs one command and resolves with its `return`. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`QMP ${command}: QEMU closed its monitor`));
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      this.socket.write(`${JSON.stringify({ execute: command, arguments: args, id })}\n`);
    });
  }

  /** Resolves with the next event of that name (and its data) that `matches`, or rejects after `timeoutMs`. */
  waitFor(event: string, timeoutMs: number, matches: (received: QmpEvent) => boolean = () => true): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('event', listener);
        reject(new Error(`no ${event} event within ${timeoutMs} ms`));
      }, timeoutMs);
      const listener = (received: QmpEvent) => {
        if (received.event !== event || !matches(received)) return;
        clearTimeout(timer);
        this.off('event', listener);
        resolve(received);
      };
      this.on('event', listener);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
