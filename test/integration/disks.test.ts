import { beforeAll, describe, expect, it } from 'vitest';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

const SPEC = { sizeGiB: 40, iops: 3000, throughputMiBps: 125 };

describe('disks and storage pools', () => {
  const tenant = uniqueId('disks');
  const pools = [
    { poolId: uniqueId('pool-a'), capacityGiB: 1000, iops: 40_000, throughputMiBps: 3000 },
    { poolId: uniqueId('pool-b'), capacityGiB: 600, iops: 30_000, throughputMiBps: 2000 },
    { poolId: uniqueId('pool-c'), capacityGiB: 400, iops: 20_000, throughputMiBps: 1000 },
  ];
  const asTenant = (method: string, path: string, body?: unknown) => api(method, path, body, tenantToken(tenant));
  const listPools = async () => (await expectOk(api('GET', '/storage-pools', undefined, operatorToken()))).storagePools as any[];
  const listDisks = async () => (await expectOk(asTenant('GET', '/disks?limit=100'))).disks as any[];

  beforeAll(async () => {
    for (const pool of pools) await expectOk(api('POST', '/storage-pools', pool, operatorToken()), 201);
  });

  it('places 50 concurrent creates without oversubscribing any pool in any dimension', async () => {
    // Other test files may have left pools with room: count what fits everywhere right now.
    const fitting = (await listPools()).reduce(
      (sum, pool) =>
        sum +
        Math.max(
          0,
          Math.min(Math.floor(pool.freeGiB / SPEC.sizeGiB), Math.floor(pool.freeIops / SPEC.iops), Math.floor(pool.freeThroughputMiBps / SPEC.throughputMiBps)),
        ),
      0,
    );
    expect(fitting).toBeGreaterThanOrEqual(29);
    expect(fitting).toBeLessThan(50);

    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => asTenant('POST', '/disks', { name: `burst-${i}`, ...SPEC })));
    const created = answers.filter((answer) => answer.status === 201);
    const refused = answers.filter((answer) => answer.status !== 201);
    expect(created).toHaveLength(fitting);
    for (const answer of refused) {
      expect(answer.status).toBe(409);
      expect(answer.body.message).toBe(
        'no storage pool in us-east-1 has 40 GiB, 3000 IOPS and 125 MiB/s free: ask for less, or have an operator register a pool (POST /storage-pools)',
      );
    }

    const disks = await listDisks();
    for (const pool of await listPools()) {
      const onPool = disks.filter((disk) => disk.poolId === pool.poolId);
      expect(pool.freeGiB).toBeGreaterThanOrEqual(0);
      expect(pool.freeIops).toBeGreaterThanOrEqual(0);
      expect(pool.freeThroughputMiBps).toBeGreaterThanOrEqual(0);
      if (!pools.some((ours) => ours.poolId === pool.poolId)) continue;
      expect(pool.capacityGiB - pool.freeGiB).toBe(onPool.reduce((sum, disk) => sum + disk.sizeGiB, 0));
      expect(pool.iops - pool.freeIops).toBe(onPool.reduce((sum, disk) => sum + disk.iops, 0));
      expect(pool.throughputMiBps - pool.freeThroughputMiBps).toBe(onPool.reduce((sum, disk) => sum + disk.throughputMiBps, 0));
    }
  });

  it('changes size, IOPS and throughput independently, within the rules and the pool', async () => {
    const [disk, neighbour] = (await listDisks()).filter((candidate) => candidate.poolId === pools[0]!.poolId);
    const grown = await expectOk(asTenant('PATCH', `/disks/${disk.diskId}`, { sizeGiB: 100 }));
    expect(grown).toMatchObject({ sizeGiB: 100, iops: 3000, throughputMiBps: 125 });
    const faster = await expectOk(asTenant('PATCH', `/disks/${disk.diskId}`, { throughputMiBps: 500 }));
    expect(faster).toMatchObject({ sizeGiB: 100, iops: 3000, throughputMiBps: 500 });

    // The pool's IOPS are all taken: more IOPS is refused and changes nothing.
    const noRoom = await asTenant('PATCH', `/disks/${disk.diskId}`, { iops: 6000 });
    expect(noRoom.status).toBe(409);
    expect(noRoom.body.message).toMatch(/has no room for this change/);
    expect((await expectOk(asTenant('GET', `/disks/${disk.diskId}`))).iops).toBe(3000);

    // Deleting the neighbour gives its IOPS back; now the same change fits.
    expect((await asTenant('DELETE', `/disks/${neighbour.diskId}`)).status).toBe(204);
    expect(await expectOk(asTenant('PATCH', `/disks/${disk.diskId}`, { iops: 6000 }))).toMatchObject({ sizeGiB: 100, iops: 6000, throughputMiBps: 500 });
    const pool = (await listPools()).find((candidate) => candidate.poolId === pools[0]!.poolId);
    const onPool = (await listDisks()).filter((candidate) => candidate.poolId === pools[0]!.poolId);
    expect(pool.iops - pool.freeIops).toBe(onPool.reduce((sum: number, candidate: any) => sum + candidate.iops, 0));
  });

  it.each([
    [{ sizeGiB: 10 }, /body\.sizeGiB: rule size-grows-only/],
    [{ throughputMiBps: 1000, iops: 3000 }, /body\.throughputMiBps: rule throughput-per-iops/],
    [{ iops: 16001 }, /body\.iops: /],
  ])('refuses PATCH %j with a 400 naming the rule', async (change, message) => {
    const [disk] = await listDisks();
    const answer = await asTenant('PATCH', `/disks/${disk.diskId}`, change);
    expect(answer.status).toBe(400);
    expect(answer.body.message).toMatch(message);
  });

  it('refuses a create that breaks a rule, naming it', async () => {
    const answer = await asTenant('POST', '/disks', { name: 'tiny', sizeGiB: 2, iops: 5000 });
    expect(answer.status).toBe(400);
    expect(answer.body.message).toMatch(/^body\.iops: rule iops-per-gib: .* 2 GiB allows at most 3000 IOPS$/);
  });

  it('places a disk in the pool an operator names, for the tenant it names; a tenant cannot pick a pool', async () => {
    // A pool of its own: the burst above filled the others.
    const own = { poolId: uniqueId('pool-pinned'), capacityGiB: 100, iops: 10_000, throughputMiBps: 500 };
    await expectOk(api('POST', '/storage-pools', own, operatorToken()), 201);
    const small = { sizeGiB: 10, iops: 3000, throughputMiBps: 125 };
    const pinned = await expectOk(api('POST', '/disks', { name: 'pinned', ...small, poolId: own.poolId, tenantId: tenant }, operatorToken()), 201);
    expect(pinned).toMatchObject({ poolId: own.poolId, state: 'available' });
    expect((await listDisks()).map((disk) => disk.diskId)).toContain(pinned.diskId);

    const picky = await asTenant('POST', '/disks', { name: 'picky', ...small, poolId: own.poolId });
    expect(picky.status).toBe(403);
    expect(picky.body.message).toMatch(/^poolId: needs scope operator/);
    const nobody = await api('POST', '/disks', { name: 'for-nobody', ...small, poolId: own.poolId }, operatorToken());
    expect(nobody.status).toBe(400);
    expect(nobody.body.message).toContain('an operator names the tenant it acts for');
    const unknown = await api('POST', '/disks', { name: 'nowhere', ...small, poolId: uniqueId('no-pool'), tenantId: tenant }, operatorToken());
    expect(unknown.status).toBe(404);
    const tooBig = await api('POST', '/disks', { name: 'too-big', sizeGiB: 1000, poolId: own.poolId, tenantId: tenant }, operatorToken());
    expect(tooBig.status).toBe(409);
    expect(tooBig.body.message).toMatch(new RegExp(`^pool ${own.poolId} has not 1000 GiB`));
    await expectOk(asTenant('DELETE', `/disks/${pinned.diskId}`), 204);
  });

  it('attaches to a VM, and refuses to delete either while attached, naming the other', async () => {
    const hostId = uniqueId('disk-host');
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.191', capacity: 4 }, operatorToken()), 201);
    await keepAlive(hostId);
    const network = await expectOk(asTenant('POST', '/networks', { name: 'disks', cidr: '10.83.0.0/24' }), 201);
    const vm = await expectOk(createVmOn({ name: 'db', networkId: network.networkId, hostId }, tenant), 201);
    const [disk] = await listDisks();

    // In the VM's first disk slot, kept while attached (every host the VM runs on plugs it there).
    expect(await expectOk(asTenant('POST', `/disks/${disk.diskId}/attach`, { vmId: vm.vmId }))).toMatchObject({
      state: 'attached',
      attachedTo: vm.vmId,
      slot: 0,
    });
    expect((await expectOk(asTenant('GET', `/vms/${vm.vmId}`))).diskIds).toEqual([disk.diskId]);
    expect((await asTenant('POST', `/disks/${disk.diskId}/attach`, { vmId: vm.vmId })).status).toBe(409);
    expect(await asTenant('DELETE', `/disks/${disk.diskId}`)).toEqual({
      status: 409,
      body: { message: `disk ${disk.diskId} is in use by vm ${vm.vmId}; detach it first` },
    });
    expect(await asTenant('DELETE', `/vms/${vm.vmId}`)).toEqual({
      status: 409,
      body: { message: `vm ${vm.vmId} has disks attached: ${disk.diskId}; detach them first` },
    });

    // Its data is a file on the VM's host: the VM moves with it only as a running guest between hosts that migrate live.
    expect(await asTenant('POST', `/vms/${vm.vmId}/migrate`, {})).toEqual({
      status: 409,
      body: {
        message: `vm ${vm.vmId} has disks attached: ${disk.diskId}; their data is on host ${hostId} and moves only with a running guest between hosts that migrate live: detach them first`,
      },
    });

    const detached = await expectOk(asTenant('POST', `/disks/${disk.diskId}/detach`));
    expect(detached).toMatchObject({ state: 'available', hostId });
    expect(detached.slot).toBeUndefined();
    expect((await expectOk(asTenant('GET', `/vms/${vm.vmId}`))).diskIds).toEqual([]);
    // Detached, its data is still on that host: it attaches to VMs there only.
    const otherHost = uniqueId('disk-host');
    await expectOk(api('POST', '/hosts', { hostId: otherHost, address: '198.51.100.192', capacity: 4 }, operatorToken()), 201);
    await keepAlive(otherHost);
    const elsewhere = await expectOk(createVmOn({ name: 'db-2', networkId: network.networkId, hostId: otherHost }, tenant), 201);
    expect(await asTenant('POST', `/disks/${disk.diskId}/attach`, { vmId: elsewhere.vmId })).toEqual({
      status: 409,
      body: { message: `vmId: rule disk-stays-on-its-host: disk ${disk.diskId}'s data is on host ${hostId}, vm ${elsewhere.vmId} runs on ${otherHost}` },
    });
    expect((await asTenant('DELETE', `/disks/${disk.diskId}`)).status).toBe(204);
    expect((await asTenant('DELETE', `/vms/${vm.vmId}`)).status).toBe(204);
    expect((await asTenant('DELETE', `/vms/${elsewhere.vmId}`)).status).toBe(204);
  });

  it('refuses storage pool ids that could name a path', async () => {
    for (const poolId of ['../etc', 'a/b', '..', 'Pool']) {
      const answer = await api('POST', '/storage-pools', { poolId, capacityGiB: 10, iops: 10, throughputMiBps: 10 }, operatorToken());
      expect(answer.status).toBe(400);
      expect(answer.body.message).toMatch(/^body\.poolId: /);
    }
  });
});
