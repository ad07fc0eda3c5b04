import { createReadStream } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ShuffleError, type ShuffleService } from './shuffle-service.ts';

/** The port an agent's peer listener takes on its underlay address unless told otherwise. */
export const DEFAULT_PEER_PORT = 7447;

const SPILL_PATH = /^\/v1\/shuffle\/([a-z0-9-]{1,63})\/workers\/([a-z0-9-]{1,63})(?:\/(records|sent))?$/;

/**
 * What one host's agent serves other hosts' agents, over the underlay: a worker's shuffle spill,
 * to the host the worker moved to. Every request carries the hand-off ticket the control plane
 * issued to that host (`authorization: Bearer …`) and names the host (`x-stratoplane-host`); the
 * shuffle service has the control plane check both before it answers. `GET …/records` and
 * `GET …/sent` hand the spill and what the worker sent; `DELETE …` says the take-over is done.
 */
export class ShufflePeerServer {
  private readonly server: http.Server;
  /** Where peers reach it, once listening. */
  url: string | undefined;

  constructor(
    private readonly shuffle: ShuffleService,
    private readonly log: (message: string) => void,
  ) {
    this.server = http.createServer((request, response) => void this.handle(request, response));
  }

  /**
   * Listens on the host's underlay address; where that address is not the machine's own (a
   * development machine running several agents), on loopback at any free port instead, where
   * requests cannot be told apart by address, so only the ticket admits them.
   */
  async listen(address: string, port: number): Promise<{ url: string; onUnderlay: boolean }> {
    let onUnderlay = true;
    try {
      await this.bind(address, port);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRNOTAVAIL') throw error;
      onUnderlay = false;
      await this.bind('127.0.0.1', 0);
      this.log(
        `peer listener: ${address} is not an address of this machine; listening on 127.0.0.1:${(this.server.address() as AddressInfo).port} (development: peers are told apart by ticket only)`,
      );
    }
    const bound = this.server.address() as AddressInfo;
    this.url = `http://${bound.address}:${bound.port}`;
    return { url: this.url, onUnderlay };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private bind(address: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (error: Error) => reject(error);
      this.server.once('error', failed);
      this.server.listen(port, address, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const fail = (status: number, message: string) => {
      if (response.headersSent) return void response.destroy();
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ message }));
    };
    try {
      const match = SPILL_PATH.exec(new URL(request.url ?? '/', 'http://peer').pathname);
      if (!match) return fail(404, 'no such path: GET /v1/shuffle/<jobId>/workers/<vmId>/records|sent, DELETE /v1/shuffle/<jobId>/workers/<vmId>');
      const [, jobId, vmId, part] = match as unknown as [string, string, string, 'records' | 'sent' | undefined];
      const ticket = /^Bearer ([A-Za-z0-9_-]{16,128})$/.exec(request.headers.authorization ?? '')?.[1];
      const toHostId = request.headers['x-stratoplane-host'];
      if (!ticket || typeof toHostId !== 'string' || !/^[a-z0-9-]{1,63}$/.test(toHostId))
        return fail(401, 'a hand-off ticket (authorization: Bearer …) and the asking host (x-stratoplane-host) are required');
      const remote = request.socket.remoteAddress;
      if (request.method === 'DELETE' && !part) {
        await this.shuffle.handedOff(jobId, vmId, ticket, toHostId, remote);
        response.writeHead(204).end();
        return;
      }
      if (request.method !== 'GET' || !part) return fail(405, 'GET …/records or …/sent; DELETE the worker');
      const { file, bytes } = await this.shuffle.handOut(jobId, vmId, part, ticket, toHostId, remote);
      this.log(`shuffle ${jobId}/${vmId}: handing its ${part} (${bytes} bytes) to host ${toHostId}`);
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(bytes) });
      if (bytes === 0) return void response.end();
      createReadStream(file, { start: 0, end: bytes - 1 })
        .on('error', () => response.destroy())
        .pipe(response);
    } catch (error) {
      if (error instanceof ShuffleError) return fail(error.status, error.message);
      this.log(`peer listener: ${(error as Error).message}`);
      fail(500, 'the spill could not be read');
    }
  }
}
