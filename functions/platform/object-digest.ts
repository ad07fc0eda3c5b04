import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { s3 } from './clients.ts';

/** SHA-256 (hex) and length of an S3 object, streamed: however large, it is never in memory whole. */
export async function digestObject(bucket: string, key: string): Promise<{ sha256: string; bytes: number }> {
  const { Body } = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of Body as Readable) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Why content differs from what was declared for it, or undefined when it matches. */
export function contentMismatch(declared: { sha256: string; sizeBytes: number }, actual: { sha256: string; bytes: number }): string | undefined {
  if (actual.bytes !== declared.sizeBytes) return `size mismatch: declared ${declared.sizeBytes} bytes, received ${actual.bytes}`;
  if (actual.sha256 !== declared.sha256) return `checksum mismatch: declared sha256 ${declared.sha256}, received ${actual.sha256}`;
  return undefined;
}
