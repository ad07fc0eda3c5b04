import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { eventually } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { uploadParts } from '../helpers/images.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

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

  it('lets operators publish an image every tenant may see and launch, and no tenant change it', async () => {
    const small = randomBytes(64 * 1024);
    const digest = createHash('sha256').update(small).digest('hex');
    const operator = operatorToken();
    const body = { name: 'public-base', sizeBytes: small.length, sha256: digest, public: true };
    // A tenant cannot publish for everyone.
    const refused = await api('POST', '/images', body, tenantToken(uniqueId('pub')));
    expect(refused.status).toBe(403);
    expect(refused.body.message).toContain('public: needs scope operator');

    const { image, upload } = await expectOk(api('POST', '/images', body, operator), 201);
    expect(image).toMatchObject({ tenantId: 'public', public: true });
    // Only an operator completes it: to a tenant it is not theirs to change.
    const parts = await uploadParts(upload, small);
    const someone = tenantToken(uniqueId('pub'));
    expect((await api('POST', `/images/${image.imageId}/complete`, { parts }, someone)).status).toBe(404);
    await expectOk(api('POST', `/images/${image.imageId}/complete`, { parts }, operator), 202);
    await eventually(async () => expect((await expectOk(api('GET', `/images/${image.imageId}`, undefined, operator))).state).toBe('available'), 60_000, 200);

    // Any tenant sees it (by id, and in the public list; not among its own) and launches it.
    expect(await expectOk(api('GET', `/images/${image.imageId}`, undefined, someone))).toMatchObject({ imageId: image.imageId, public: true });
    expect((await expectOk(api('GET', '/images?owner=public&limit=100', undefined, someone))).images.map((listed: any) => listed.imageId)).toContain(
      image.imageId,
    );
    expect((await expectOk(api('GET', '/images?limit=100', undefined, someone))).images).toEqual([]);
    const tenantId = uniqueId('pub-user');
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'pub', cidr: '10.93.0.0/24' }, tenantToken(tenantId)), 201);
    const hostId = uniqueId('pub-host');
    await expectOk(api('POST', '/hosts', { hostId, address: '192.0.2.250', capacity: 4 }, operator), 201);
    await keepAlive(hostId);
    const vm = await expectOk(createVmOn({ name: 'from-public', networkId, hostId, imageId: image.imageId }, tenantId), 201);
    expect(vm).toMatchObject({ imageId: image.imageId, state: 'provisioning' });
    await expectOk(api('DELETE', `/vms/${vm.vmId}`, undefined, tenantToken(tenantId)), 204);
  });
});
