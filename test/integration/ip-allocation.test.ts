import { beforeAll, describe, expect, it } from 'vitest';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken } from '../helpers/tokens.ts';

const ipToInt = (ip: string) => ip.split('.').reduce((value, part) => value * 256 + Number(part), 0);

describe('IP allocation under concurrency', () => {
  let networkId: string;
  /** The freest host of all, live, but registered with auto-placement off: placement must never choose it. */
  const namedOnly = uniqueId('named-only');

  beforeAll(async () => {
    for (const i of [1, 2]) {
      const hostId = uniqueId(`alloc${i}`);
      await expectOk(api('POST', '/hosts', { hostId, address: `198.51.100.${60 + i}`, capacity: 200 }, operatorToken()), 201);
      await keepAlive(hostId);
    }
    const registered = await expectOk(
      api('POST', '/hosts', { hostId: namedOnly, address: '198.51.100.60', capacity: 10_000, autoPlacement: 'off' }, operatorToken()),
      201,
    );
    expect(registered.autoPlacement).toBe('off');
    await keepAlive(namedOnly);
    networkId = (await expectOk(api('POST', '/networks', { name: 'alloc', cidr: '10.50.0.0/26' }), 201)).networkId;
  });

  it('gives 50 concurrent creates in a /26 50 distinct addresses, then refuses past capacity with 409', async () => {
    const network = await expectOk(api('GET', `/networks/${networkId}`));
    expect(network.capacity).toBe(61); // 64 less network, gateway and broadcast

    const first = await Promise.all(Array.from({ length: 50 }, (_, i) => api('POST', '/vms', { name: `vm-${i}`, networkId })));
    expect(first.map((response) => response.status)).toEqual(Array(50).fill(201));
    const ips = first.map((response) => response.body.ip as string);
    expect(new Set(ips).size).toBe(50);
    for (const ip of ips) {
      expect(ipToInt(ip)).toBeGreaterThanOrEqual(ipToInt('10.50.0.2'));
      expect(ipToInt(ip)).toBeLessThanOrEqual(ipToInt('10.50.0.62'));
    }

    // 20 more race for the last 11 addresses.
    const second = await Promise.all(Array.from({ length: 20 }, (_, i) => api('POST', '/vms', { name: `late-${i}`, networkId })));
    const created = second.filter((response) => response.status === 201);
    const refused = second.filter((response) => response.status === 409);
    expect(created).toHaveLength(11);
    expect(refused).toHaveLength(9);
    for (const response of refused) expect(response.body.message).toMatch(/networkId: .* has no free address/);
    const all = [...ips, ...created.map((response) => response.body.ip as string)];
    expect(new Set(all).size).toBe(61);
    // Placement never chose the host with auto-placement off; a VM that names it goes there.
    expect([...first, ...created].filter((response) => response.body.hostId === namedOnly)).toEqual([]);

    const listed = [];
    let nextToken: string | undefined;
    do {
      const page = await expectOk(api('GET', `/vms?networkId=${networkId}&limit=25${nextToken ? `&nextToken=${nextToken}` : ''}`));
      listed.push(...page.vms);
      nextToken = page.nextToken;
    } while (nextToken);
    expect(listed).toHaveLength(61);
  });

  it('reuses a released address under a higher version', async () => {
    const { vms } = await expectOk(api('GET', `/vms?networkId=${networkId}&limit=1`));
    const victim = vms[0];
    expect((await api('DELETE', `/vms/${victim.vmId}`)).status).toBe(204);
    expect((await api('GET', `/vms/${victim.vmId}`)).status).toBe(404);
    const reborn = await expectOk(api('POST', '/vms', { name: 'reborn', networkId }), 201);
    expect(reborn.ip).toBe(victim.ip);
    // created (1), released (2), created again (3): agents can never mistake the old VM for the new.
    expect(reborn.endpoint.version).toBe(victim.endpoint.version + 2);
  });

  it('places a VM that names a host with auto-placement off there, and refuses one pinned to a full host with 409', async () => {
    const hostId = uniqueId('tiny');
    // Auto-placement off: no other file's creates fill it first.
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.70', capacity: 1, autoPlacement: 'off' }, operatorToken()), 201);
    await keepAlive(hostId);
    const network = await expectOk(api('POST', '/networks', { name: 'tiny', cidr: '10.51.0.0/28' }), 201);
    expect((await expectOk(createVmOn({ name: 'one', networkId: network.networkId, hostId }), 201)).hostId).toBe(hostId);
    const second = await createVmOn({ name: 'two', networkId: network.networkId, hostId });
    expect(second).toEqual({ status: 409, body: { message: `hostId: host ${hostId} is full (1 of 1 VMs)` } });
  });
});
