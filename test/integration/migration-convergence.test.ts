import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { tokenFor } from '../helpers/tokens.ts';

/**
 * 3 hosts, 2 networks, 6 VMs. Network A runs on hosts 1 and 2, network B on hosts 2 and 3, so
 * host 3 must never hear of network A and host 1 never of network B.
 */
describe('migration propagates to exactly the agents that need it', () => {
  let agents: RunningAgent[];
  let networkA: string;
  let networkB: string;
  const vms: Record<string, { vmId: string; ip: string }> = {};

  beforeAll(async () => {
    agents = await Promise.all([1, 2, 3].map((i) => startAgent(uniqueId(`conv${i}`), `198.51.100.${i}`)));
    networkA = (await expectOk(api('POST', '/networks', { name: 'a', cidr: '10.10.0.0/24' }), 201)).networkId;
    networkB = (await expectOk(api('POST', '/networks', { name: 'b', cidr: '10.20.0.0/24' }), 201)).networkId;
    const placements: [string, string, number][] = [
      ['a1', networkA, 0],
      ['a2', networkA, 1],
      ['a3', networkA, 0],
      ['b1', networkB, 1],
      ['b2', networkB, 2],
      ['b3', networkB, 2],
    ];
    for (const [name, networkId, host] of placements) {
      vms[name] = await expectOk(createVmOn({ name, networkId, hostId: agents[host]!.hostId }), 201);
    }
  });

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
  });

  const endpointAt = async (agent: RunningAgent, networkId: string, vm: string) => (await agent.status()).networks[networkId]?.entries[vms[vm]!.ip];

  it('gives every member host the whole network and nobody else any of it', async () => {
    const [h1, h2, h3] = agents as [RunningAgent, RunningAgent, RunningAgent];
    await eventually(async () => {
      for (const vm of ['a1', 'a2', 'a3']) {
        expect((await endpointAt(h1, networkA, vm))?.state).toBe('active');
        expect((await endpointAt(h2, networkA, vm))?.state).toBe('active');
      }
      for (const vm of ['b1', 'b2', 'b3']) {
        expect((await endpointAt(h2, networkB, vm))?.state).toBe('active');
        expect((await endpointAt(h3, networkB, vm))?.state).toBe('active');
      }
    });
    expect(await endpointAt(h1, networkA, 'a2')).toMatchObject({ endpoint: h2.address, version: 1 });
    expect((await h1.status()).networks[networkB]).toBeUndefined();
    expect((await h3.status()).networks[networkA]).toBeUndefined();
  });

  it('moves a migrated VM to its new endpoint on every agent of its network', async () => {
    const [h1, h2, h3] = agents as [RunningAgent, RunningAgent, RunningAgent];
    const migrated = await expectOk(migrateVmTo(vms.a1!.vmId, h2.hostId));
    expect(migrated).toMatchObject({ ip: vms.a1!.ip, hostId: h2.hostId, endpoint: { address: h2.address, version: 2 } });

    await eventually(async () => {
      for (const agent of [h1, h2]) {
        expect(await endpointAt(agent, networkA, 'a1')).toMatchObject({ endpoint: h2.address, version: 2, state: 'active' });
      }
    });
    // Host 3 runs nothing of network A: it was never sent any of it.
    expect((await h3.status()).networks[networkA]).toBeUndefined();
    expect((await expectOk(api('GET', `/vms/${vms.a1!.vmId}`))).hostId).toBe(h2.hostId);
  });

  it('shows through the API which of the hosts that need a moved endpoint hold it, from what the agents acknowledge', async () => {
    const [h1, h2, h3] = agents as [RunningAgent, RunningAgent, RunningAgent];
    const migrated = await expectOk(migrateVmTo(vms.a2!.vmId, h1.hostId));
    const convergence = () => expectOk(api('GET', `/vms/${vms.a2!.vmId}/convergence`));
    // Network A runs on hosts 1 (a2, a3) and 2 (a1): both need the new endpoint, host 3 does not.
    await eventually(async () =>
      expect(await convergence()).toEqual({
        vmId: vms.a2!.vmId,
        hostId: h1.hostId,
        endpoint: { address: h1.address, version: migrated.endpoint.version },
        hostsTotal: 2,
        hostsConverged: 2,
        converged: true,
        pendingHostIds: [],
      }),
    );
    // What the API says is what the agents hold.
    for (const agent of [h1, h2]) expect(await endpointAt(agent, networkA, 'a2')).toMatchObject({ endpoint: h1.address, version: migrated.endpoint.version });

    // An acknowledgement never moves back, and a host acknowledges only for itself.
    const asHost = (hostId: string, body: unknown, path = `/hosts/${h2.hostId}/endpoint-acks`) => api('POST', path, body, tokenFor('host', hostId));
    expect((await asHost(h2.hostId, { acks: [{ vmId: vms.a2!.vmId, version: 1 }] })).status).toBe(204);
    expect(await convergence()).toMatchObject({ hostsConverged: 2, converged: true });
    expect((await asHost(h3.hostId, { acks: [{ vmId: vms.a2!.vmId, version: 1 }] })).status).toBe(403);
    const tooMany = await asHost(h2.hostId, { acks: Array.from({ length: 101 }, () => ({ vmId: vms.a2!.vmId, version: 9 })) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.message).toBe('body.acks: Too big: expected array to have <=100 items');
    expect(await convergence()).toMatchObject({ hostsConverged: 2, endpoint: { version: migrated.endpoint.version } });
  });

  it('makes a host that no longer runs any VM of a network drop it, and a new host join it', async () => {
    const [h1, h2, h3] = agents as [RunningAgent, RunningAgent, RunningAgent];
    // b1 was host 2's only VM in network B.
    await expectOk(migrateVmTo(vms.b1!.vmId, h3.hostId));
    await eventually(async () => {
      expect(await endpointAt(h3, networkB, 'b1')).toMatchObject({ endpoint: h3.address, version: 2 });
      expect((await h2.status()).networks[networkB]).toMatchObject({ member: false, entries: {} });
    });
    expect((await h2.status()).routes.some((route) => route.networkId === networkB)).toBe(false);
    expect((await h1.status()).networks[networkB]).toBeUndefined();
  });
});
