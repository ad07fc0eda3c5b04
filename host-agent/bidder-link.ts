import net from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  type BidderAnswer,
  type BidRequestFrame,
  type BidRequestV2Frame,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  SBRP_VERSION,
} from './bid-protocol.ts';

let lastRequestId = 0;
/** Request ids are unique across every link of the process, so one encoded request goes to many bidders as it is. */
export function nextRequestId(): number {
  lastRequestId = (lastRequestId % 0xffff_ffff) + 1;
  return lastRequestId;
}

type UnsentRequest = Omit<BidRequestFrame, 'requestId'> | Omit<BidRequestV2Frame, 'requestId'>;

/**
 * One VM's bidder port on its bridge: the bidder inside the VM connects here (169.254.169.254:7070
 * on a host with a namespace) and keeps the connection, so it is this VM's bidder because of where
 * it connected. When the VM moves, the connection ends with this host's bridge; the bidder connects
 * to the same address again and reaches its new host's. The relay sends requests
 * down the connection and matches answers by request id; an answer after its deadline is dropped.
 * A bidder that says hello with version 2 is sent SBRP/2 requests (the whole OpenRTB request);
 * one that does not, SBRP/1 (see bid-protocol.ts).
 */
export class BidderLink {
  private readonly server: net.Server;
  private socket: net.Socket | undefined;
  private readonly waiting = new Map<number, (answer: BidderAnswer) => void>();
  readonly stats = { requests: 0, answered: 0, late: 0, malformed: 0 };
  /** The SBRP version of the connected bidder: 1 until it says hello. */
  version = 1;
  port = 0;

  /** On the VM's interface: the only address a connection may come from (its packets carry its own). */
  private onlyFrom: string | undefined;

  constructor(
    readonly vmId: string,
    private readonly log: (message: string) => void,
    private readonly vmIp?: string,
  ) {
    this.server = net.createServer((socket) => this.attach(socket));
  }

  /**
   * Listens on `on`, a socket in the host's namespace that only the VM's interface is redirected
   * to (BridgesOnInterface), or on a 127.0.0.1 port of its own (development only).
   */
  async listen(on?: net.Server): Promise<number> {
    if (on) {
      await new Promise<void>((resolve) => this.server.listen(on, resolve));
      this.onlyFrom = this.vmIp;
    } else await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  /**
   * Sends an encoded request (its id `requestId`) and calls `onAnswer` with the bidder's answer,
   * unless `forget(requestId)` came first. False if no bidder is connected.
   */
  send(encoded: Buffer, requestId: number, onAnswer: (answer: BidderAnswer) => void): boolean {
    const socket = this.socket;
    if (!socket || socket.destroyed) return false;
    this.stats.requests++;
    this.waiting.set(requestId, onAnswer);
    socket.write(encoded);
    return true;
  }

  /** Stops waiting for an answer: one that comes later is counted late and dropped. */
  forget(requestId: number): void {
    this.waiting.delete(requestId);
  }

  /** Asks the bidder one request; resolves with its answer, or undefined if none came within `deadlineMs`. */
  ask(frame: UnsentRequest, deadlineMs: number): Promise<BidderAnswer | undefined> {
    const requestId = nextRequestId();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.forget(requestId);
        resolve(undefined);
      }, deadlineMs);
      const sent = this.send(encodeFrame({ ...frame, requestId } as Frame), requestId, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      if (!sent) {
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  }

  close(): Promise<void> {
    this.socket?.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private attach(socket: net.Socket) {
    if (this.onlyFrom && socket.remoteAddress?.replace(/^::ffff:/, '') !== this.onlyFrom) return void socket.destroy();
    // A reconnecting bidder replaces its old connection, and says hello again if it speaks SBRP/2.
    this.socket?.destroy();
    this.socket = socket;
    this.version = 1;
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
        if (frame.type === FrameType.Hello) {
          this.version = Math.max(1, Math.min(SBRP_VERSION, frame.version));
          socket.write(encodeFrame({ type: FrameType.Hello, requestId: 0, version: this.version }));
          continue;
        }
        if (frame.type === FrameType.BidRequest || frame.type === FrameType.BidRequestV2) {
          this.stats.malformed++;
          continue;
        }
        const waiter = this.waiting.get(frame.requestId);
        if (!waiter) {
          this.stats.late++;
          continue;
        }
        this.waiting.delete(frame.requestId);
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
