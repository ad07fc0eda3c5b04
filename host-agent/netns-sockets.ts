import { spawn, type ChildProcess } from 'node:child_process';
import type net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const helper = path.join(path.dirname(fileURLToPath(import.meta.url)), 'netns-socket-helper.mjs');

type Pending = { resolve: (handle: net.Socket | net.Server) => void; reject: (error: Error) => void };

/**
 * Opens TCP connections and listeners inside a host's network namespace, for an agent that runs
 * outside it (the data-plane lab puts each simulated host in a namespace; on a real server the
 * agent runs in its host's namespace and needs none of this). A helper process started in the
 * namespace makes each socket and hands it back over its IPC channel.
 */
export class NetnsSockets {
  private child: ChildProcess | undefined;
  private starting: Promise<ChildProcess> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(
    readonly netns: string,
    private readonly log: (message: string) => void,
  ) {}

  connect(address: string, port: number): Promise<net.Socket> {
    return this.ask('connect', address, port) as Promise<net.Socket>;
  }

  /** A listening TCP socket in the namespace (port 0: any free one), to be served from this process. */
  listen(address: string, port = 0): Promise<net.Server> {
    return this.ask('listen', address, port) as Promise<net.Server>;
  }

  private async ask(kind: 'connect' | 'listen', address: string, port: number): Promise<net.Socket | net.Server> {
    const child = await this.helper();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.send({ kind, id, address, port });
    });
  }

  close(): void {
    this.child?.kill();
    this.child = undefined;
  }

  /** The helper, started on first use and again if it died. */
  private helper(): Promise<ChildProcess> {
    if (this.child && this.child.exitCode === null && this.child.connected) return Promise.resolve(this.child);
    this.starting ??= new Promise<ChildProcess>((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', this.netns, process.execPath, helper], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.once('error', reject);
      child.on('exit', (code) => {
        if (this.child === child) this.child = undefined;
        for (const [id, waiting] of this.pending) {
          this.pending.delete(id);
          waiting.reject(new Error(`the socket helper in ${this.netns} exited (${code})`));
        }
        reject(new Error(`the socket helper in ${this.netns} exited (${code}) before it was ready`));
      });
      child.on('message', (message: { ready?: boolean; id?: number; error?: string }, handle?: net.Socket | net.Server) => {
        if (message.ready) {
          this.child = child;
          return resolve(child);
        }
        const waiting = message.id === undefined ? undefined : this.pending.get(message.id);
        if (!waiting) return void (handle && ('destroy' in handle ? handle.destroy() : handle.close()));
        this.pending.delete(message.id!);
        if (handle) waiting.resolve(handle);
        else waiting.reject(new Error(message.error ?? 'no socket'));
      });
      child.unref();
    }).finally(() => (this.starting = undefined));
    return this.starting.catch((error: Error) => {
      this.log(`netns ${this.netns}: ${error.message}`);
      throw error;
    });
  }
}
