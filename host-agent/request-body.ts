import type http from 'node:http';

/** The small requests the agent serves locally (key uploads, token checks) fit in this. */
export const MAX_LOCAL_BODY_BYTES = 16 * 1024;

/** A request's body as text, or undefined once it grows past `maxBytes` (the rest is not read into memory). */
export async function readSmallBody(request: http.IncomingMessage, maxBytes = MAX_LOCAL_BODY_BYTES): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
