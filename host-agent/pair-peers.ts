import http from 'node:http';
import type net from 'node:net';

/** Where a host's agent takes network-pair messages from other hosts' agents, on its underlay address. */
export const PAIR_PORT = 7448;

/** Opens a TCP connection to `address:port` from this host's underlay. */
export type Dial = (address: string, port: number) => Promise<net.Socket>;

/** `POST path` with a JSON body to another host's pair listener; its status and message (502 when it could not be reached). */
export async function postToPeer(dial: Dial, address: string, path: string, body: unknown): Promise<{ status: number; message: string; body?: unknown }> {
  let socket: net.Socket;
  try {
    socket = await dial(address, PAIR_PORT);
  } catch (error) {
    return { status: 502, message: `host ${address} unreachable: ${(error as Error).message}` };
  }
  const text = JSON.stringify(body);
  return new Promise((resolve) => {
    const request = http.request(
      {
        method: 'POST',
        path,
        host: address,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        createConnection: () => socket,
        timeout: 5_000,
      },
      (response) => {
        let answer = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk));
        response.on('end', () => {
          let parsed: { message?: string } | undefined;
          try {
            parsed = JSON.parse(answer) as { message?: string };
          } catch {}
          resolve({ status: response.statusCode ?? 502, message: parsed?.message ?? answer, body: parsed });
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error('no answer within 5 s')));
    request.on('error', (error) => resolve({ status: 502, message: `host ${address}: ${error.message}` }));
    request.end(text);
  });
}
