import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { encodeFrame, FrameDecoder, FrameType, type BidResponseFrame, type Frame, type NoBidFrame } from './bid-protocol.ts';

/**
 * One VM's bidder port on its bridge: the bidder inside the VM connects here and keeps the
 * connection, so it is this VM's bidder because of where it connected. The relay sends requests
 * down the connection and matches answers by request id; an answer after its deadline is dropped.
 */
export class BidderLink {
  private readonly server: net.Server;
  private socket: net.Socket | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (frame: BidResponseFrame | NoBidFrame) => void>();
  readonly stats = { requests: 0, answered: 0, late: 0, malformed: 0 };
  port = 0;

  constructor(
    readonly vmId: string,
    private readonly log: (message: string) => void,
  ) {
    this.server = net.createServer((socket) => this.attach(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  /** Asks the bidder; resolves with its answer, or undefined if none came within `deadlineMs`. */
  ask(frame: Omit<Extract<Frame, { type: 1 }>, 'requestId'>, deadlineMs: number): Promise<BidResponseFrame | NoBidFrame | undefined> {
    const socket = this.socket;
    if (!socket || socket.destroyed) return Promise.resolve(undefined);
    const requestId = this.nextId;
    this.nextId = (this.nextId % 0xffff_ffff) + 1;
    this.stats.requests++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId);
        resolve(undefined);
      }, deadlineMs);
      this.waiting.set(requestId, (answer) => {
        clearTimeout(timer);
        this.waiting.delete(requestId);
        resolve(answer);
      });
      socket.write(encodeFrame({ ...frame, requestId }));
    });
  }

  close(): Promise<void> {
    this.socket?.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private attach(socket: net.Socket) {
    // A reconnecting bidder replaces its old connection.
    this.socket?.destroy();
    this.socket = socket;
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    socket.on('data', (chunk) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        this.stats.malformed++;
        this.log(`bidder ${this.vmId}: ${(error as Error).message}; connection closed`);
        return void socket.destroy();
      }
      for (const frame of frames) {
        if (frame.type === FrameType.BidRequest) {
          this.stats.malformed++;
          continue;
        }
        const waiter = this.waiting.get(frame.requestId);
        if (!waiter) {
          this.stats.late++;
          continue;
        }
        this.stats.answered++;
        waiter(frame);
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      if (this.socket === socket) this.socket = undefined;
    });
  }
}
