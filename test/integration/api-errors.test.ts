import { beforeAll, describe, expect, it } from 'vitest';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';
import { operatorToken } from '../helpers/tokens.ts';

describe('API input errors', () => {
  let networkId: string;
  let hostId: string;
  let vmId: string;
  /** A host that only holds an address: it says it runs no VMs, so placement never puts other files' VMs there. */
  const registerAt = (id: string, address: string) => api('POST', '/hosts', { hostId: id, address, capacity: 1, vmRuntime: 'none' }, operatorToken());

  beforeAll(async () => {
    hostId = uniqueId('errors');
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.80', capacity: 4 }, operatorToken()), 201);
    networkId = (await expectOk(api('POST', '/networks', { name: 'errors', cidr: '10.60.0.0/24' }), 201)).networkId;
    vmId = (await expectOk(createVmOn({ name: 'vm', networkId, hostId }), 201)).vmId;
  });

  it.each([
    ['POST', '/networks', { name: 'x', cidr: '10.0.0.0/33' }, /body\.cidr: /],
    ['POST', '/networks', { name: 'x', cidr: '10.0.0.0/8' }, /body\.cidr: prefix length must be between \/16 and \/28/],
    ['POST', '/networks', { cidr: '10.0.0.0/24' }, /body\.name: /],
    ['POST', '/networks', { name: 'x', cidr: '10.0.0.0/24', color: 'red' }, /body: unknown field\(s\) color/],
    ['POST', '/networks', '{not json', /body: is not valid JSON/],
    ['POST', '/vms', { name: 'x', networkId: 'NOT VALID' }, /body\.networkId: /],
    ['POST', '/hosts', { hostId: 'h', address: '300.1.1.1', capacity: 1 }, /body\.address: /],
    ['POST', '/hosts', { hostId: 'h', address: '10.0.0.1', capacity: 0 }, /body\.capacity: /],
    ['GET', '/networks?limit=1000', undefined, /query\.limit: /],
    ['GET', '/networks?nextToken=garbage', undefined, /nextToken: is not a token this API returned/],
  ])('%s %s %j → 400 naming the field', async (method, path, body, message) => {
    const response = await api(method, path, body, path.startsWith('/hosts') ? operatorToken() : undefined);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(message);
  });

  it.each([
    ['GET', '/vms/vm-doesnotexist', undefined, 'vm vm-doesnotexist not found'],
    ['GET', '/networks/net-doesnotexist', undefined, 'network net-doesnotexist not found'],
    ['DELETE', '/vms/vm-doesnotexist', undefined, 'vm vm-doesnotexist not found'],
    ['POST', '/vms', { name: 'x', networkId: 'net-doesnotexist' }, 'network net-doesnotexist not found'],
    ['GET', '/hosts/nohost/forwarding-table', undefined, 'host nohost not found'],
  ])('%s %s → 404', async (method, path, body, message) => {
    const response = await api(method, path, body, path.startsWith('/hosts') ? operatorToken() : undefined);
    expect(response.status).toBe(404);
    expect(response.body.message).toBe(message);
  });

  it('answers 404 for migration to an unknown host and 409 to the current one', async () => {
    const unknown = await migrateVmTo(vmId, 'nohost');
    expect(unknown).toEqual({ status: 404, body: { message: 'host nohost not found' } });
    const same = await migrateVmTo(vmId, hostId);
    expect(same).toEqual({ status: 409, body: { message: expect.stringMatching(/already runs on host/) } });
  });

  it('refuses re-registering a host at another address, and accepts the same registration again', async () => {
    expect((await api('POST', '/hosts', { hostId, address: '198.51.100.80', capacity: 4 }, operatorToken())).status).toBe(200);
    const moved = await api('POST', '/hosts', { hostId, address: '198.51.100.81', capacity: 4 }, operatorToken());
    expect(moved.status).toBe(409);
    expect(moved.body.message).toMatch(/^address: host .* is already registered at 198\.51\.100\.80$/);
  });

  it.each([
    ['0.0.0.0', 'unspecified (0.0.0.0/8)'],
    ['0.1.2.3', 'unspecified (0.0.0.0/8)'],
    ['127.0.0.1', 'loopback (127.0.0.0/8)'],
    ['224.0.0.1', 'multicast (224.0.0.0/4)'],
    ['240.0.0.1', 'reserved (240.0.0.0/4)'],
    ['255.255.255.255', 'broadcast (255.255.255.255/32)'],
  ])('refuses to register a host at %s, %s: 400 naming the field and the rule', async (address, what) => {
    expect(await registerAt(uniqueId('errors-cast'), address)).toEqual({
      status: 400,
      body: { message: `body.address: must be a unicast address other hosts can reach: ${address} is ${what}` },
    });
  });

  it('answers unknown routes with a 404, as the API Gateway response for them says', async () => {
    const response = await api('GET', '/nothing-here');
    expect(response.status).toBe(404);
    expect(response.body.message).toBe('no route for this method and path; GET /openapi.json lists them');
  });

  it('pages through networks with nextToken', async () => {
    await expectOk(api('POST', '/networks', { name: 'second', cidr: '10.61.0.0/24' }), 201);
    const first = await expectOk(api('GET', '/networks?limit=1'));
    expect(first.networks).toHaveLength(1);
    expect(first.nextToken).toBeTypeOf('string');
    const second = await expectOk(api('GET', `/networks?limit=1&nextToken=${first.nextToken}`));
    expect(second.networks[0].networkId).not.toBe(first.networks[0].networkId);
  });
});
