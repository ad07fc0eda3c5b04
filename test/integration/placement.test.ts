import { beforeAll, describe, expect, it } from 'vitest';
import type { ApiResponse } from '#events/api-client.ts';
import { createVmOn, expectOk, migrateVmTo, request, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tenantToken, tokenFor } from '../helpers/tokens.ts';

/**
 * Tenants do not pick physical hosts: naming one (on create or migrate) is for operators, and a
 * tenant that tries is told which scope it needs. A tenant may still migrate (placement picks
 * another host) and keep its own VMs apart (spreadFrom). Operators act for a tenant they name.
 */
describe('placement: tenants do not pick hosts', () => {
  const [tenantId, otherTenantId] = [uniqueId('place'), uniqueId('place-other')];
  const tenant = tenantToken(tenantId);
  const other = tenantToken(otherTenantId);
  const hostIds = [uniqueId('place1'), uniqueId('place2'), uniqueId('place3')];
  let networkId: string;
  let otherNetworkId: string;
  /** The tenant's VM, placed by the operator on the first host. */
  let pinned: ApiResponse<'createVm'>;

  const vmsNamed = async (token: Promise<string>, name: string) =>
    (await expectOk(request('listVms', { query: { limit: 100 } }, { token }))).vms.filter((vm) => vm.name === name);

  beforeAll(async () => {
    for (const [i, hostId] of hostIds.entries()) {
      await expectOk(request('registerHost', { body: { hostId, address: `198.51.100.${151 + i}`, capacity: 4 } }, { token: operatorToken() }), 201);
    }
    await keepAlive(...hostIds);
    networkId = (await expectOk(request('createNetwork', { body: { name: 'place', cidr: '10.95.0.0/24' } }, { token: tenant }), 201)).networkId;
    otherNetworkId = (await expectOk(request('createNetwork', { body: { name: 'place', cidr: '10.95.0.0/24' } }, { token: other }), 201)).networkId;
    pinned = await expectOk(createVmOn({ name: 'pinned', networkId, hostId: hostIds[0]! }, tenantId), 201);
  });

  it('refuses a tenant that names a host on create, naming the scope it needs, and creates nothing', async () => {
    const refused = await request('createVm', { body: { name: 'picky', networkId, hostId: hostIds[1] } }, { token: tenant });
    expect(refused).toEqual({
      status: 403,
      body: { message: expect.stringMatching(/^hostId: needs scope operator \(tenants do not pick hosts: leave it out/) },
    });
    expect(await vmsNamed(tenant, 'picky')).toEqual([]);
  });

  it('refuses a tenant that names the target of a migration, and leaves the VM where it is', async () => {
    const refused = await request('migrateVm', { params: { vmId: pinned.vmId }, body: { targetHostId: hostIds[1] } }, { token: tenant });
    expect(refused).toEqual({ status: 403, body: { message: expect.stringMatching(/^targetHostId: needs scope operator \(tenants do not pick hosts/) } });
    expect((await expectOk(request('getVm', { params: { vmId: pinned.vmId } }, { token: tenant }))).hostId).toBe(hostIds[0]);
  });

  it('lets a tenant create without a host and migrate without naming one: placement picks another host', async () => {
    const placed = await expectOk(request('createVm', { body: { name: 'placed', networkId } }, { token: tenant }), 201);
    expect(placed.hostId).toMatch(/./);
    const moved = await expectOk(request('migrateVm', { params: { vmId: placed.vmId }, body: {} }, { token: tenant }));
    expect(moved.hostId).not.toBe(placed.hostId);
    expect(moved.ip).toBe(placed.ip);
    expect(moved.endpoint.version).toBe(placed.endpoint.version + 1);
    await expectOk(request('deleteVm', { params: { vmId: placed.vmId } }, { token: tenant }), 204);
  });

  it('keeps a tenant VM off the hosts of the VMs it names in spreadFrom (its own only)', async () => {
    const apart = await expectOk(request('createVm', { body: { name: 'apart', networkId, spreadFrom: [pinned.vmId] } }, { token: tenant }), 201);
    expect(apart.hostId).not.toBe(pinned.hostId);
    const moved = await expectOk(request('migrateVm', { params: { vmId: apart.vmId }, body: { spreadFrom: [pinned.vmId] } }, { token: tenant }));
    expect([pinned.hostId, apart.hostId]).not.toContain(moved.hostId);
    // Another tenant's VM is as unknown there as anywhere.
    const foreign = await request('createVm', { body: { name: 'nosy', networkId: otherNetworkId, spreadFrom: [pinned.vmId] } }, { token: other });
    expect(foreign).toEqual({ status: 404, body: { message: `vm ${pinned.vmId} not found` } });
    await expectOk(request('deleteVm', { params: { vmId: apart.vmId } }, { token: tenant }), 204);
  });

  it('lets an operator pin and move a tenant VM, for the tenant it names', async () => {
    const noTenant = await request('createVm', { body: { name: 'orphan', networkId, hostId: hostIds[1] } }, { token: operatorToken() });
    expect(noTenant).toEqual({ status: 400, body: { message: 'body.tenantId: an operator names the tenant it acts for' } });
    // The tenant's network is unknown to the operator acting for another tenant.
    const wrongTenant = await createVmOn({ name: 'astray', networkId, hostId: hostIds[1]! }, otherTenantId);
    expect(wrongTenant).toEqual({ status: 404, body: { message: `network ${networkId} not found` } });
    expect(pinned).toMatchObject({ tenantId, hostId: hostIds[0] });
    expect((await expectOk(request('getVm', { params: { vmId: pinned.vmId } }, { token: tenant }))).hostId).toBe(hostIds[0]);

    const moved = await expectOk(migrateVmTo(pinned.vmId, hostIds[2]!));
    expect(moved).toMatchObject({ vmId: pinned.vmId, tenantId, hostId: hostIds[2] });
    pinned = moved;
  });

  it('refuses a tenant acting for another tenant, and hosts on these routes', async () => {
    const astray = await request('createVm', { body: { name: 'astray', networkId, tenantId: otherTenantId } }, { token: tenant });
    expect(astray).toEqual({ status: 403, body: { message: expect.stringMatching(/^tenantId: needs scope operator/) } });
    const host = tokenFor('host', hostIds[0]!);
    expect((await request('createVm', { body: { name: 'by-host', networkId, hostId: hostIds[0] } }, { token: host })).status).toBe(403);
    expect((await request('migrateVm', { params: { vmId: pinned.vmId }, body: {} }, { token: host })).status).toBe(403);
  });

  it("lists a host's VMs of every tenant to an operator only", async () => {
    const theirs = await expectOk(createVmOn({ name: 'neighbour', networkId: otherNetworkId, hostId: pinned.hostId }, otherTenantId), 201);
    const onHost = await expectOk(request('listVms', { query: { hostId: pinned.hostId } }, { token: operatorToken() }));
    expect(onHost.vms.map((vm) => vm.vmId).sort()).toEqual([pinned.vmId, theirs.vmId].sort());
    const asTenant = await request('listVms', { query: { hostId: pinned.hostId } }, { token: tenant });
    expect(asTenant).toEqual({ status: 403, body: { message: expect.stringMatching(/^query\.hostId: needs scope operator/) } });
    expect((await request('listVms', {}, { token: operatorToken() })).body).toEqual({ message: 'query.hostId: an operator lists the VMs of one host' });
  });
});

/**
 * A packed network (`placement: pack`) keeps its VMs on the hosts it already runs on while one of
 * them has room and is healthy, on create and on a move; spreadFrom still wins; a network that
 * says nothing spreads as before.
 */
describe('placement: a packed network', () => {
  const tenantId = uniqueId('pack');
  const tenant = tenantToken(tenantId);
  const hostIds = [uniqueId('pack1'), uniqueId('pack2')];
  /** Room for a VM kept apart from the network's hosts. */
  const elsewhere = uniqueId('pack3');
  let networkId: string;
  const create = async (name: string, more: { spreadFrom?: string[] } = {}) =>
    expectOk(request('createVm', { body: { name, networkId, ...more } }, { token: tenant }), 201);

  beforeAll(async () => {
    for (const [i, hostId] of hostIds.entries()) {
      await expectOk(request('registerHost', { body: { hostId, address: `198.51.100.${176 + i}`, capacity: 3 } }, { token: operatorToken() }), 201);
    }
    await expectOk(request('registerHost', { body: { hostId: elsewhere, address: '198.51.100.178', capacity: 1 } }, { token: operatorToken() }), 201);
    await keepAlive(...hostIds, elsewhere);
  });

  it('says how each network places its VMs, and refuses a placement it does not know, creating nothing', async () => {
    const packed = await expectOk(request('createNetwork', { body: { name: 'packed', cidr: '10.96.0.0/24', placement: 'pack' } }, { token: tenant }), 201);
    networkId = packed.networkId;
    expect(packed.placement).toBe('pack');
    expect((await expectOk(request('getNetwork', { params: { networkId } }, { token: tenant }))).placement).toBe('pack');
    const spread = await expectOk(request('createNetwork', { body: { name: 'spread', cidr: '10.97.0.0/24' } }, { token: tenant }), 201);
    expect(spread.placement).toBe('spread');
    const refused = await request('createNetwork', { body: { name: 'huddle', cidr: '10.98.0.0/24', placement: 'huddle' as 'pack' } }, { token: tenant });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toMatch(/placement/);
    const names = (await expectOk(request('listNetworks', { query: { limit: 100 } }, { token: tenant }))).networks.map((network) => network.name);
    expect(names.sort()).toEqual(['packed', 'spread']);
  });

  it('puts new VMs on the host running the network until it is full, then on its next host', async () => {
    const first = await expectOk(createVmOn({ name: 'first', networkId, hostId: hostIds[0]! }, tenantId), 201);
    const joined = [await create('second'), await create('third')];
    expect(joined.map((vm) => vm.hostId)).toEqual([first.hostId, first.hostId]);
    // The first host is full: the operator starts the network on the second, and it fills that one next.
    const fourth = await expectOk(createVmOn({ name: 'fourth', networkId, hostId: hostIds[1]! }, tenantId), 201);
    expect((await create('fifth')).hostId).toBe(fourth.hostId);
  });

  it('keeps spreadFrom: a VM kept apart from the network’s VMs goes elsewhere', async () => {
    const vms = (await expectOk(request('listVms', { query: { limit: 100 } }, { token: tenant }))).vms;
    const onSecond = vms.filter((vm) => vm.hostId === hostIds[1]).map((vm) => vm.vmId);
    const apart = await create('apart', { spreadFrom: onSecond });
    expect(hostIds).not.toContain(apart.hostId);
    await expectOk(request('deleteVm', { params: { vmId: apart.vmId } }, { token: tenant }), 204);
  });

  it('moves a VM to another of the network’s hosts when one has room', async () => {
    const vms = (await expectOk(request('listVms', { query: { limit: 100 } }, { token: tenant }))).vms;
    const onFirst = vms.filter((vm) => vm.hostId === hostIds[0]);
    const onSecond = vms.filter((vm) => vm.hostId === hostIds[1]);
    expect([onFirst.length, onSecond.length]).toEqual([3, 2]);
    // Room on the first host again; the second's VM moves there, not to any other host of the region.
    await expectOk(request('deleteVm', { params: { vmId: onFirst[0]!.vmId } }, { token: tenant }), 204);
    const moved = await expectOk(request('migrateVm', { params: { vmId: onSecond[0]!.vmId }, body: {} }, { token: tenant }));
    expect(moved.hostId).toBe(hostIds[0]);
  });
});
