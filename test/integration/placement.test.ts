import { beforeAll, describe, expect, it } from 'vitest';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';
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
  let pinned: any;

  const vmsNamed = async (token: Promise<string>, name: string) => ((await expectOk(api('GET', '/vms?limit=100', undefined, token))).vms as any[]).filter((vm) => vm.name === name);

  beforeAll(async () => {
    for (const [i, hostId] of hostIds.entries()) {
      await expectOk(api('POST', '/hosts', { hostId, address: `198.51.100.${151 + i}`, capacity: 4 }, operatorToken()), 201);
    }
    networkId = (await expectOk(api('POST', '/networks', { name: 'place', cidr: '10.95.0.0/24' }, tenant), 201)).networkId;
    otherNetworkId = (await expectOk(api('POST', '/networks', { name: 'place', cidr: '10.95.0.0/24' }, other), 201)).networkId;
    pinned = await expectOk(createVmOn({ name: 'pinned', networkId, hostId: hostIds[0]! }, tenantId), 201);
  });

  it('refuses a tenant that names a host on create, naming the scope it needs, and creates nothing', async () => {
    const refused = await api('POST', '/vms', { name: 'picky', networkId, hostId: hostIds[1] }, tenant);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/^hostId: needs scope operator \(tenants do not pick hosts: leave it out/);
    expect(await vmsNamed(tenant, 'picky')).toEqual([]);
  });

  it('refuses a tenant that names the target of a migration, and leaves the VM where it is', async () => {
    const refused = await api('POST', `/vms/${pinned.vmId}/migrate`, { targetHostId: hostIds[1] }, tenant);
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/^targetHostId: needs scope operator \(tenants do not pick hosts/);
    expect((await expectOk(api('GET', `/vms/${pinned.vmId}`, undefined, tenant))).hostId).toBe(hostIds[0]);
  });

  it('lets a tenant create without a host and migrate without naming one: placement picks another host', async () => {
    const placed = await expectOk(api('POST', '/vms', { name: 'placed', networkId }, tenant), 201);
    expect(placed.hostId).toMatch(/./);
    const moved = await expectOk(api('POST', `/vms/${placed.vmId}/migrate`, {}, tenant));
    expect(moved.hostId).not.toBe(placed.hostId);
    expect(moved.ip).toBe(placed.ip);
    expect(moved.endpoint.version).toBe(placed.endpoint.version + 1);
    await expectOk(api('DELETE', `/vms/${placed.vmId}`, undefined, tenant), 204);
  });

  it('keeps a tenant VM off the hosts of the VMs it names in spreadFrom (its own only)', async () => {
    const apart = await expectOk(api('POST', '/vms', { name: 'apart', networkId, spreadFrom: [pinned.vmId] }, tenant), 201);
    expect(apart.hostId).not.toBe(pinned.hostId);
    const moved = await expectOk(api('POST', `/vms/${apart.vmId}/migrate`, { spreadFrom: [pinned.vmId] }, tenant));
    expect([pinned.hostId, apart.hostId]).not.toContain(moved.hostId);
    // Another tenant's VM is as unknown there as anywhere.
    const foreign = await api('POST', '/vms', { name: 'nosy', networkId: otherNetworkId, spreadFrom: [pinned.vmId] }, other);
    expect(foreign).toEqual({ status: 404, body: { message: `vm ${pinned.vmId} not found` } });
    await expectOk(api('DELETE', `/vms/${apart.vmId}`, undefined, tenant), 204);
  });

  it('lets an operator pin and move a tenant VM, for the tenant it names', async () => {
    const noTenant = await api('POST', '/vms', { name: 'orphan', networkId, hostId: hostIds[1] }, operatorToken());
    expect(noTenant).toEqual({ status: 400, body: { message: 'body.tenantId: an operator names the tenant it acts for' } });
    // The tenant's network is unknown to the operator acting for another tenant.
    const wrongTenant = await createVmOn({ name: 'astray', networkId, hostId: hostIds[1]! }, otherTenantId);
    expect(wrongTenant).toEqual({ status: 404, body: { message: `network ${networkId} not found` } });
    expect(pinned).toMatchObject({ tenantId, hostId: hostIds[0] });
    expect((await expectOk(api('GET', `/vms/${pinned.vmId}`, undefined, tenant))).hostId).toBe(hostIds[0]);

    const moved = await expectOk(migrateVmTo(pinned.vmId, hostIds[2]!));
    expect(moved).toMatchObject({ vmId: pinned.vmId, tenantId, hostId: hostIds[2] });
    pinned = moved;
  });

  it('refuses a tenant acting for another tenant, and hosts on these routes', async () => {
    const astray = await api('POST', '/vms', { name: 'astray', networkId, tenantId: otherTenantId }, tenant);
    expect(astray.status).toBe(403);
    expect(astray.body.message).toMatch(/^tenantId: needs scope operator/);
    const host = tokenFor('host', hostIds[0]!);
    expect((await api('POST', '/vms', { name: 'by-host', networkId, hostId: hostIds[0] }, host)).status).toBe(403);
    expect((await api('POST', `/vms/${pinned.vmId}/migrate`, {}, host)).status).toBe(403);
  });

  it("lists a host's VMs of every tenant to an operator only", async () => {
    const theirs = await expectOk(createVmOn({ name: 'neighbour', networkId: otherNetworkId, hostId: pinned.hostId }, otherTenantId), 201);
    const onHost = await expectOk(api('GET', `/vms?hostId=${pinned.hostId}`, undefined, operatorToken()));
    expect(onHost.vms.map((vm: any) => vm.vmId).sort()).toEqual([pinned.vmId, theirs.vmId].sort());
    const asTenant = await api('GET', `/vms?hostId=${pinned.hostId}`, undefined, tenant);
    expect(asTenant.status).toBe(403);
    expect(asTenant.body.message).toMatch(/^query\.hostId: needs scope operator/);
    expect((await api('GET', '/vms', undefined, operatorToken())).body).toEqual({ message: 'query.hostId: an operator lists the VMs of one host' });
  });
});
