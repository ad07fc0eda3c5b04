import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_QUOTAS } from '#events/quotas.ts';
import { eventually } from '../helpers/agents.ts';
import { api, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tokenFor } from '../helpers/tokens.ts';

describe('tenant quotas', () => {
  const tenant = uniqueId('quota-t');
  const other = uniqueId('quota-u');
  const asTenant = (method: string, path: string, body?: unknown) => api(method, path, body, tokenFor('tenant', tenant));
  const asOther = (method: string, path: string, body?: unknown) => api(method, path, body, tokenFor('tenant', other));
  const asOperator = (method: string, path: string, body?: unknown) => api(method, path, body, operatorToken());
  const setLimits = (limits: Record<string, number>) => expectOk(asOperator('PUT', `/quotas/${tenant}`, limits));
  const used = async () => {
    const { quotas } = await expectOk(asTenant('GET', '/quotas'));
    return Object.fromEntries(Object.entries(quotas as Record<string, { used: number }>).map(([name, quota]) => [name, quota.used]));
  };
  let networkId: string;
  const disks: string[] = [];

  beforeAll(async () => {
    // Room for every VM this file makes, and a pool that fits two of its disks at a time.
    const hostId = uniqueId('quota-host');
    await expectOk(asOperator('POST', '/hosts', { hostId, address: '198.51.100.235', capacity: 40 }), 201);
    await keepAlive(hostId);
    await expectOk(asOperator('POST', '/storage-pools', { poolId: uniqueId('quota-pool'), capacityGiB: 200, iops: 6000, throughputMiBps: 250 }), 201);
  });

  afterAll(async () => {
    // Leave no disk in any pool: other files count the room pools have.
    for (const diskId of disks) await asTenant('DELETE', `/disks/${diskId}`);
  });

  it('shows a new tenant the defaults and nothing used', async () => {
    const quotas = await expectOk(asTenant('GET', '/quotas'));
    expect(quotas).toEqual({
      tenantId: tenant,
      region: 'us-east-1',
      quotas: Object.fromEntries(Object.entries(DEFAULT_QUOTAS).map(([name, limit]) => [name, { limit, used: 0, source: 'default' }])),
    });
    expect(DEFAULT_QUOTAS).toEqual({ vms: 50, disks: 100, diskGiB: 10_240, networks: 20 });
  });

  it("lets only operators set limits: a tenant cannot raise its own (403), nor read or set another tenant's", async () => {
    const raised = await asTenant('PUT', `/quotas/${tenant}`, { vms: 1000 });
    expect(raised.status).toBe(403);
    expect((await asOther('PUT', `/quotas/${tenant}`, { vms: 0 })).status).toBe(403);
    expect((await expectOk(asTenant('GET', '/quotas'))).quotas.vms).toEqual({ limit: 50, used: 0, source: 'default' });

    const peek = await asOther('GET', `/quotas?tenantId=${tenant}`);
    expect(peek.status).toBe(403);
    expect(peek.body.message).toMatch(/query\.tenantId: needs scope operator/);
    // Naming itself is fine; its own answer says nothing of the other tenant.
    expect((await expectOk(asOther('GET', `/quotas?tenantId=${other}`))).tenantId).toBe(other);
    expect((await asOperator('GET', '/quotas')).status).toBe(400);

    const set = await setLimits({ vms: 5, networks: 2, disks: 1, diskGiB: 100 });
    expect(set.quotas).toEqual({
      vms: { limit: 5, used: 0, source: 'operator' },
      disks: { limit: 1, used: 0, source: 'operator' },
      diskGiB: { limit: 100, used: 0, source: 'operator' },
      networks: { limit: 2, used: 0, source: 'operator' },
    });
    expect(set.updatedAt).toBeDefined();
    expect(await expectOk(asOperator('GET', `/quotas?tenantId=${tenant}`))).toEqual(await expectOk(asTenant('GET', '/quotas')));
    // The other tenant's limits are untouched.
    expect((await expectOk(asOther('GET', '/quotas'))).quotas.vms).toEqual({ limit: 50, used: 0, source: 'default' });
  });

  it('refuses a network past the quota with 403 naming it, and counts a delete back', async () => {
    networkId = (await expectOk(asTenant('POST', '/networks', { name: 'q1', cidr: '10.91.0.0/24' }), 201)).networkId;
    const second = await expectOk(asTenant('POST', '/networks', { name: 'q2', cidr: '10.92.0.0/24' }), 201);
    const refused = await asTenant('POST', '/networks', { name: 'q3', cidr: '10.93.0.0/24' });
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/^quota exceeded: networks 2 of 2/);
    expect((await expectOk(asTenant('GET', '/networks'))).networks).toHaveLength(2);

    await expectOk(asTenant('DELETE', `/networks/${second.networkId}`), 204);
    expect((await used()).networks).toBe(1);
    // A repeated delete gives nothing back twice.
    expect([204, 404]).toContain((await asTenant('DELETE', `/networks/${second.networkId}`)).status);
    expect((await used()).networks).toBe(1);
    await expectOk(asTenant('POST', '/networks', { name: 'q3', cidr: '10.93.0.0/24' }), 201);
    expect((await used()).networks).toBe(2);
  });

  it('makes exactly as many VMs as are left when 8 race for the last 3, and counts deletes back', async () => {
    await expectOk(asTenant('POST', '/vms', { name: 'a', networkId }), 201);
    await expectOk(asTenant('POST', '/vms', { name: 'b', networkId }), 201);
    expect((await used()).vms).toBe(2);

    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => asTenant('POST', '/vms', { name: `race-${i}`, networkId })));
    const created = answers.filter((answer) => answer.status === 201);
    const refused = answers.filter((answer) => answer.status !== 201);
    expect(created).toHaveLength(3);
    for (const answer of refused) {
      expect(answer.status).toBe(403);
      expect(answer.body.message).toMatch(/^quota exceeded: vms 5 of 5/);
    }
    const vms = (await expectOk(asTenant('GET', '/vms?limit=100'))).vms;
    expect(vms).toHaveLength(5);
    expect((await used()).vms).toBe(5);

    await expectOk(asTenant('DELETE', `/vms/${created[0]!.body.vmId}`), 204);
    expect((await used()).vms).toBe(4);
    await expectOk(asTenant('POST', '/vms', { name: 'after-delete', networkId }), 201);
    expect((await asTenant('POST', '/vms', { name: 'one-too-many', networkId })).status).toBe(403);

    // Lowered below what the tenant holds: what it holds stays, nothing new is made.
    await setLimits({ vms: 3, networks: 2, disks: 1, diskGiB: 100 });
    expect((await expectOk(asTenant('GET', '/vms?limit=100'))).vms).toHaveLength(5);
    const lowered = await asTenant('POST', '/vms', { name: 'lowered', networkId });
    expect(lowered.status).toBe(403);
    expect(lowered.body.message).toMatch(/^quota exceeded: vms 5 of 3/);
  });

  it('counts disks and their GiB, on create and on growth', async () => {
    const first = await expectOk(asTenant('POST', '/disks', { name: 'd1', sizeGiB: 60 }), 201);
    disks.push(first.diskId);
    const secondDisk = await asTenant('POST', '/disks', { name: 'd2', sizeGiB: 10 });
    expect(secondDisk.status).toBe(403);
    expect(secondDisk.body.message).toMatch(/^quota exceeded: disks 1 of 1/);

    await setLimits({ vms: 3, networks: 2, disks: 5, diskGiB: 100 });
    const tooBig = await asTenant('POST', '/disks', { name: 'd2', sizeGiB: 50 });
    expect(tooBig.status).toBe(403);
    expect(tooBig.body.message).toMatch(/^quota exceeded: diskGiB 60 of 100 \(this needs 50 more\)/);
    const fits = await expectOk(asTenant('POST', '/disks', { name: 'd2', sizeGiB: 40 }), 201);
    disks.push(fits.diskId);
    expect(await used()).toMatchObject({ disks: 2, diskGiB: 100 });

    const grow = await asTenant('PATCH', `/disks/${first.diskId}`, { sizeGiB: 61 });
    expect(grow.status).toBe(403);
    expect(grow.body.message).toMatch(/^quota exceeded: diskGiB 100 of 100/);
    expect((await expectOk(asTenant('GET', `/disks/${first.diskId}`))).sizeGiB).toBe(60);

    await expectOk(asTenant('DELETE', `/disks/${fits.diskId}`), 204);
    expect(await used()).toMatchObject({ disks: 1, diskGiB: 60 });
    // Growth within the quota is counted. By 10 GiB, not up to the limit: growth stays on the disk's
    // pool, which placement drew among all the run's pools, some of 100 GiB and partly used.
    expect((await expectOk(asTenant('PATCH', `/disks/${first.diskId}`, { sizeGiB: 70 }))).sizeGiB).toBe(70);
    expect(await used()).toMatchObject({ disks: 1, diskGiB: 70 });
    await expectOk(asTenant('DELETE', `/disks/${first.diskId}`), 204);
    expect(await used()).toMatchObject({ disks: 0, diskGiB: 0 });
  });

  it("gives back everything a deleted project held, through the resource graph's releases", async () => {
    await setLimits({ vms: 20, networks: 5, disks: 5, diskGiB: 500 });
    const before = await used();
    const { projectId } = await expectOk(asTenant('POST', '/projects', { name: 'quota-cascade' }), 201);
    const net = await expectOk(asTenant('POST', '/networks', { name: 'cascade', cidr: '10.94.0.0/24', projectId }), 201);
    const vm = await expectOk(asTenant('POST', '/vms', { name: 'cascade-vm', networkId: net.networkId }), 201);
    const disk = await expectOk(asTenant('POST', '/disks', { name: 'cascade-disk', sizeGiB: 30, projectId }), 201);
    disks.push(disk.diskId);
    await expectOk(asTenant('POST', `/disks/${disk.diskId}/attach`, { vmId: vm.vmId }));
    expect(await used()).toEqual({ vms: before.vms! + 1, networks: before.networks! + 1, disks: before.disks! + 1, diskGiB: before.diskGiB! + 30 });

    await expectOk(asTenant('DELETE', `/projects/${projectId}`), 202);
    await eventually(async () => expect((await asTenant('GET', `/projects/${projectId}`)).status).toBe(404), 60_000, 250);
    expect(await used()).toEqual(before);
  });
});
