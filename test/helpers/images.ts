import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import { eventually } from './agents.ts';
import { expectOk, request } from './api.ts';

/** Uploads content to the presigned part URLs, part by part, as a client streaming from disk would. */
export async function uploadParts(upload: { partSize: number; parts: { partNumber: number; url: string }[] }, content: Buffer) {
  return Promise.all(
    upload.parts.map(async ({ partNumber, url }) => {
      const body = content.subarray((partNumber - 1) * upload.partSize, partNumber * upload.partSize);
      const response = await fetch(url, { method: 'PUT', body });
      expect(response.status).toBe(200);
      return { partNumber, etag: response.headers.get('etag')! };
    }),
  );
}

/** Uploads an image through the first region's API and waits until it is available there. */
export async function uploadImage(name: string, content: Buffer, token?: Promise<string>): Promise<{ imageId: string; sha256: string }> {
  const sha256 = createHash('sha256').update(content).digest('hex');
  const { image, upload } = await expectOk(request('createImage', { body: { name, sizeBytes: content.length, sha256 } }, { token }), 201);
  await expectOk(request('completeImageUpload', { params: { imageId: image.imageId }, body: { parts: await uploadParts(upload, content) } }, { token }), 202);
  await eventually(
    async () => expect((await expectOk(request('getImage', { params: { imageId: image.imageId } }, { token }))).state).toBe('available'),
    60_000,
    200,
  );
  return { imageId: image.imageId, sha256 };
}
