import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/agents.ts';
import { api, expectOk } from '../helpers/api.ts';
import { uploadParts } from '../helpers/images.ts';

describe('images', () => {
  const content = randomBytes(20 * 1024 * 1024 + 12_345);
  const sha256 = createHash('sha256').update(content).digest('hex');

  it('takes content in parts through presigned URLs and makes it available once its SHA-256 matches', async () => {
    const { image, upload } = await expectOk(api('POST', '/images', { name: 'debian-13', sizeBytes: content.length, sha256 }), 201);
    expect(image).toMatchObject({ name: 'debian-13', state: 'uploading', sizeBytes: content.length, sha256 });
    expect(upload.parts).toHaveLength(Math.ceil(content.length / upload.partSize));
    const parts = await uploadParts(upload, content);

    const completed = await expectOk(api('POST', `/images/${image.imageId}/complete`, { parts }), 202);
    expect(completed.state).toBe('verifying');
    await eventually(async () => expect((await expectOk(api('GET', `/images/${image.imageId}`))).state).toBe('available'), 60_000, 200);
    expect((await expectOk(api('GET', '/images?limit=100'))).images.map((listed: any) => listed.imageId)).toContain(image.imageId);
    // Completing again changes nothing.
    expect((await api('POST', `/images/${image.imageId}/complete`, { parts })).status).toBe(409);
  });

  it('fails an image whose content does not match its declared checksum, saying so', async () => {
    const declared = createHash('sha256').update('something else').digest('hex');
    const { image, upload } = await expectOk(api('POST', '/images', { name: 'tampered', sizeBytes: content.length, sha256: declared }), 201);
    await expectOk(api('POST', `/images/${image.imageId}/complete`, { parts: await uploadParts(upload, content) }), 202);
    await eventually(
      async () => {
        const failed = await expectOk(api('GET', `/images/${image.imageId}`));
        expect(failed.state).toBe('failed');
        expect(failed.failureReason).toBe(`checksum mismatch: declared sha256 ${declared}, received ${sha256}`);
      },
      60_000,
      200,
    );
  });

  it('refuses parts that are missing or not what S3 received', async () => {
    const { image, upload } = await expectOk(api('POST', '/images', { name: 'partial', sizeBytes: content.length, sha256 }), 201);
    const parts = await uploadParts(upload, content);
    expect((await api('POST', `/images/${image.imageId}/complete`, { parts: parts.slice(1) })).body.message).toMatch(/^body\.parts: give parts 1 to 3/);
    const wrong = await api('POST', `/images/${image.imageId}/complete`, { parts: parts.map((part) => ({ ...part, etag: '"0123"' })) });
    expect(wrong.status).toBe(400);
    expect(wrong.body.message).toMatch(/^body\.parts: S3 refused them \(InvalidPart\)/);
    expect((await expectOk(api('GET', `/images/${image.imageId}`))).state).toBe('uploading');
  });
});
