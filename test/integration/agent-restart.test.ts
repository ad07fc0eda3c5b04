import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVmOn, expectOk, migrateVmTo, request, uniqueId } from '../helpers/api.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';

describe('an agent that was down converges when it restarts', () => {
  let agents: RunningAgent[];
  let networkId: string;

  beforeAll(async () => {
    agents = await Promise.all([1, 2, 3].map((i) => startAgent(uniqueId(`restart${i}`), `198.51.100.${40 + i}`)));
    networkId = (await expectOk(request('createNetwork', { body: { name: 'restart', cidr: '10.40.0.0/24' } }), 201)).networkId;
  });

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
  });

  it('resyncs from the control plane and applies what it missed', async () => {
    const [h1, h2, h3] = agents as [RunningAgent, RunningAgent, RunningAgent];
    const mover = await expectOk(createVmOn({ name: 'mover', networkId, hostId: h1.hostId }), 201);
    await expectOk(createVmOn({ name: 'stay-2', networkId, hostId: h2.hostId }), 201);
    await expectOk(createVmOn({ name: 'stay-3', networkId, hostId: h3.hostId }), 201);
    await eventually(async () => expect((await h3.status()).networks[networkId]?.entries[mover.ip]?.version).toBe(1));

    await h3.process.stop('SIGKILL');
    const moved = await expectOk(migrateVmTo(mover.vmId, h2.hostId));
    const created = await expectOk(createVmOn({ name: 'while-down', networkId, hostId: h1.hostId }), 201);

    const restarted = await startAgent(h3.hostId, h3.address);
    agents[2] = restarted;
    // The agent reports ready only after its start-up resync, so the table is already current.
    const status = await restarted.status();
    expect(status.stats.resyncs).toBeGreaterThanOrEqual(1);
    expect(status.networks[networkId]!.entries[mover.ip]).toMatchObject({ endpoint: h2.address, version: moved.endpoint.version });
    expect(status.networks[networkId]!.entries[created.ip]).toMatchObject({ endpoint: h1.address, state: 'active' });

    // Messages queued while it was down are then applied as no-ops, and nothing regresses.
    await eventually(async () => {
      const later = await restarted.status();
      expect(later.stats.messagesReceived).toBeGreaterThan(0);
      expect(later.networks[networkId]!.entries[mover.ip]).toMatchObject({ endpoint: h2.address, version: moved.endpoint.version });
      // A message the killed agent had received but not deleted reappears after the 30 s visibility timeout.
    }, 60_000);
  });
});
