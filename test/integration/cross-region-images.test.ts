import { createHash, randomBytes } from 'node:crypto';
import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, expectOk, uniqueId } from '../helpers/api.ts';
import { uploadImage } from '../helpers/images.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

/**
 * An image uploaded in the first region, launched in the second: the two regions' control planes
 * share the global table (replicated locally by the replicator) and each has its own image bucket.
 */
describe('cross-region launch', () => {
  const home = { apiUrl: inject('apiUrl'), region: inject('region') };
  const away = inject('secondRegion');
  const tenantId = uniqueId('xregion');
  const tenant = tenantToken(tenantId);
  const inHome = (method: string, path: string, body?: unknown) => api(method, path, body, tenant, home.apiUrl);
  const inAway = (method: string, path: string, body?: unknown) => api(method, path, body, tenant, away.apiUrl);
  const s3 = (region: string) =>
    new S3Client({ endpoint: inject('awsEndpoint'), region, forcePathStyle: true, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  // The images bucket itself (Images<hash>), not its access log bucket (ImagesAccessLogs<hash>).
  const bucketIn = (resources: Record<string, string>) => Object.entries(resources).find(([id]) => /^Images[0-9A-F]{8}$/.test(id))![1];
  const homeBucket = bucketIn(inject('resources'));
  const awayBucket = bucketIn(away.resources);
  const objectsUnder = async (prefix: string) => (await s3(away.region).send(new ListObjectsV2Command({ Bucket: awayBucket, Prefix: prefix }))).Contents ?? [];
  const vmIn = async (vmId: string) => expectOk(inAway('GET', `/vms/${vmId}`));
  /**
   * A launch in the second region on this file's live host, as an operator names it: hosts that
   * earlier test files registered there stay registered after their agents stopped, and a VM placed
   * on one would never run.
   */
  const launchAway = async (body: Record<string, unknown>) =>
    api('POST', '/vms', { ...body, hostId: agent.hostId, tenantId }, await operatorToken(), away.apiUrl);
  let agent: RunningAgent;
  let networkId: string;
  const copiedImages: string[] = [];

  beforeAll(async () => {
    // A host of the second region registers through that region's API.
    agent = await startAgent(uniqueId('xr-host'), '192.0.2.201', 32, away);
    networkId = (await expectOk(inAway('POST', '/networks', { name: 'away', cidr: '10.77.0.0/24' }), 201)).networkId;
  }, 120_000);

  afterAll(async () => {
    await agent?.process.stop();
  });

  it("keeps networks and hosts regional: the first region will not place VMs on the second one's", async () => {
    // The network reaches the first region through the global table; placing a VM in it there is refused.
    await eventually(async () => expect((await inHome('GET', `/networks/${networkId}`)).status).toBe(200), 20_000, 100);
    const refused = await inHome('POST', '/vms', { name: 'wrong-region', networkId });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(`networkId: network ${networkId} is in ${away.region}; create its VMs through the ${away.region} API`);
  });

  it('launches from an image of another region: VMs wait, provisioning, for one verified copy, then their host runs them', async () => {
    const content = randomBytes(20 * 1024 * 1024 + 4321);
    const { imageId, sha256 } = await uploadImage('debian-13', content, tenant);
    copiedImages.push(imageId);
    // The image's record reaches the second region through the global table.
    await eventually(async () => expect((await expectOk(inAway('GET', `/images/${imageId}`))).state).toBe('available'), 20_000, 100);

    const launched = await Promise.all(Array.from({ length: 6 }, (_, index) => expectOk(launchAway({ name: `web-${index}`, networkId, imageId }), 201)));
    const waiting = launched.filter((vm) => vm.stateReason?.startsWith('waiting for image'));
    expect(waiting.length).toBeGreaterThan(0);
    for (const vm of launched) expect(vm.state).toBe('provisioning');
    for (const vm of waiting) {
      expect(vm.stateReason).toBe(`waiting for image ${imageId} to be copied from ${home.region} to ${away.region}`);
    }
    await eventually(
      async () => {
        for (const vm of launched) expect(await vmIn(vm.vmId)).toMatchObject({ state: 'running', imageId, region: away.region });
      },
      60_000,
      200,
    );

    // One copy for six launches, made in one attempt, and what is in the second region's bucket is the image.
    const image = await expectOk(inAway('GET', `/images/${imageId}`));
    expect(image.copies).toEqual([expect.objectContaining({ region: away.region, state: 'available', attempts: 1 })]);
    const objects = await objectsUnder(`images/${imageId}/`);
    expect(objects).toHaveLength(1);
    const { Body } = await s3(away.region).send(new GetObjectCommand({ Bucket: awayBucket, Key: objects[0]!.Key! }));
    expect(
      createHash('sha256')
        .update(Buffer.from(await Body!.transformToByteArray()))
        .digest('hex'),
    ).toBe(sha256);

    // A VM changes only through its own region's API.
    await eventually(async () => expect((await inHome('GET', `/vms/${launched[0].vmId}`)).status).toBe(200), 20_000, 100);
    const misdirected = await inHome('DELETE', `/vms/${launched[0].vmId}`);
    expect(misdirected.status).toBe(409);
    expect(misdirected.body.message).toBe(`vm ${launched[0].vmId} is in ${away.region}; change it through the ${away.region} API`);

    // A later launch goes to its host at once: no waiting for a copy.
    const late = await expectOk(launchAway({ name: 'web-late', networkId, imageId }), 201);
    expect(late).toMatchObject({ state: 'provisioning' });
    expect(late.stateReason).toBeUndefined();
    await eventually(async () => expect((await vmIn(late.vmId)).state).toBe('running'), 30_000, 200);
    // The copy is a node of the project the first launch was in, and the VMs use it.
    const graph = await expectOk(inAway('GET', `/projects/${launched[0].projectId}/graph`));
    const copyNode = `${imageId}-${away.region}`;
    expect(graph.nodes).toContainEqual({ nodeId: copyNode, kind: 'image-copy', name: `debian-13 (${away.region})` });
    expect(graph.edges).toContainEqual({ from: launched[0].vmId, to: copyNode, kind: 'uses' });
  }, 120_000);

  it('retries a copy that fails, then fails its VMs with the reason and leaves nothing half-copied', async () => {
    const content = randomBytes(9 * 1024 * 1024);
    const { imageId, sha256 } = await uploadImage('corrupted-at-source', content, tenant);
    copiedImages.push(imageId);
    // The source object rots after verification: every copy of it fails its checksum.
    const rotten = Buffer.from(content);
    rotten.writeUInt8(rotten.readUInt8(12_345) ^ 0xff, 12_345);
    await s3(home.region).send(new PutObjectCommand({ Bucket: homeBucket, Key: `images/${imageId}`, Body: rotten }));
    await eventually(async () => expect((await expectOk(inAway('GET', `/images/${imageId}`))).state).toBe('available'), 20_000, 100);

    const launched = await Promise.all([0, 1].map((index) => expectOk(inAway('POST', '/vms', { name: `doomed-${index}`, networkId, imageId }), 201)));
    const received = createHash('sha256').update(rotten).digest('hex');
    const reason = `copying image ${imageId} from ${home.region} to ${away.region} failed after 3 attempt(s): checksum mismatch: declared sha256 ${sha256}, received ${received}`;
    await eventually(
      async () => {
        for (const vm of launched) expect(await vmIn(vm.vmId)).toMatchObject({ state: 'failed', stateReason: reason });
      },
      60_000,
      250,
    );
    const image = await expectOk(inAway('GET', `/images/${imageId}`));
    expect(image.copies).toEqual([expect.objectContaining({ region: away.region, state: 'failed', attempts: 3, failureReason: reason })]);
    expect(await objectsUnder(`images/${imageId}/`)).toEqual([]);
    const uploads = await s3(away.region).send(new ListMultipartUploadsCommand({ Bucket: awayBucket, Prefix: `images/${imageId}/` }));
    expect(uploads.Uploads ?? []).toEqual([]);

    // Once the source is mended, a new launch tries the copy again, and it runs.
    await s3(home.region).send(new PutObjectCommand({ Bucket: homeBucket, Key: `images/${imageId}`, Body: content }));
    const retried = await expectOk(launchAway({ name: 'after-repair', networkId, imageId }), 201);
    expect(retried).toMatchObject({ state: 'provisioning', stateReason: expect.stringMatching(/^waiting for image/) });
    await eventually(async () => expect((await vmIn(retried.vmId)).state).toBe('running'), 60_000, 200);
    // The failed VMs stay failed: they keep the reason until their owner deletes them.
    expect((await vmIn(launched[0].vmId)).state).toBe('failed');
  }, 120_000);

  it("deleting the project through the first region releases the second region's nodes there: VMs, network and copies", async () => {
    const { projectId } = await expectOk(inAway('GET', `/networks/${networkId}`));
    const graph = await expectOk(inAway('GET', `/projects/${projectId}/graph`));
    expect(graph.nodes.filter((node: any) => node.kind === 'image-copy')).toHaveLength(2);
    await eventually(async () => expect((await inHome('GET', `/projects/${projectId}`)).status).toBe(200), 20_000, 100);
    await expectOk(inHome('DELETE', `/projects/${projectId}`), 202);

    await eventually(async () => expect((await inAway('GET', `/projects/${projectId}`)).status).toBe(404), 60_000, 250);
    expect((await expectOk(inAway('GET', '/vms'))).vms).toEqual([]);
    expect((await inAway('GET', `/networks/${networkId}`)).status).toBe(404);
    // The removals reach the first region's replica too.
    await eventually(
      async () => {
        expect((await inHome('GET', `/networks/${networkId}`)).status).toBe(404);
        expect((await inHome('GET', `/projects/${projectId}`)).status).toBe(404);
      },
      20_000,
      100,
    );
    for (const imageId of copiedImages) {
      // The images themselves stay (they belong to the tenant); their copies and copied content are gone.
      expect((await expectOk(inAway('GET', `/images/${imageId}`))).copies).toEqual([]);
      expect(await objectsUnder(`images/${imageId}/`)).toEqual([]);
    }
    const { hosts } = await expectOk(api('GET', '/hosts', undefined, operatorToken(), away.apiUrl));
    expect(hosts.find((host: any) => host.hostId === agent.hostId)).toMatchObject({ region: away.region, vmCount: 0 });
  }, 120_000);
});
