import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ApiClient, ApiResponse } from '#events/api-client.ts';
import { CliError, ExitCode } from './errors.ts';

/**
 * Uploads a file as an image: its SHA-256 first (streamed), then each part straight to S3 through
 * the presigned URL the API gave for it, a few at a time, read from the file as it goes, never
 * whole into memory. Progress goes to stderr.
 */
export async function uploadImage(
  api: ApiClient,
  file: string,
  name: string,
  progress: (line: string) => void,
  options: { public?: boolean } = {},
): Promise<ApiResponse<'completeImageUpload'>> {
  const { size } = await stat(file).catch(() => {
    throw new CliError(ExitCode.usage, `cannot read ${file}`);
  });
  progress(`hashing ${file} (${size} bytes)`);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const { image, upload } = await api.createImage({ body: { name, sizeBytes: size, sha256: hash.digest('hex'), ...(options.public ? { public: true } : {}) } });
  const parts: { partNumber: number; etag: string }[] = [];
  let next = 0;
  const worker = async () => {
    for (let index = next++; index < upload.parts.length; index = next++) {
      const { partNumber, url } = upload.parts[index]!;
      const start = (partNumber - 1) * upload.partSize;
      const end = Math.min(size, start + upload.partSize) - 1;
      const response = await fetch(url, {
        method: 'PUT',
        headers: { 'content-length': String(end - start + 1) },
        body: Readable.toWeb(createReadStream(file, { start, end })) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      if (!response.ok)
        throw new CliError(
          ExitCode.unavailable,
          `part ${partNumber}: S3 answered ${response.status} ${await response.text()}`,
          'upload again: a new image is made each time',
        );
      parts.push({ partNumber, etag: response.headers.get('etag')! });
      progress(`uploaded ${parts.length}/${upload.parts.length} parts (${Math.round((parts.length / upload.parts.length) * 100)}%)`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, upload.parts.length) }, worker));
  return api.completeImageUpload({ params: { imageId: image.imageId }, body: { parts } });
}
