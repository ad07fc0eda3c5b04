import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlaneLab, labUnavailableReason, type LabVm, type TrafficProbe } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';

const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`data-plane tests skipped: ${unavailable}`);

/**
 * Real tunnels: three hosts are network namespaces on one underlay bridge, their agents program
 * VXLAN devices, neighbours and routes in them, and two VMs (namespaces of their own) talk over
 * UDP and TCP while one of them migrates.
 */
describe.skipIf(unavailable !== undefined)('real data plane (VXLAN in network namespaces)', () => {
  const lab = new DataPlaneLab(`t${process.pid % 100_000}`);
  let agents: RunningAgent[] = [];
  let client: LabVm;
  let server: LabVm;
  let probe: TrafficProbe;

  beforeAll(async () => {
    const hosts = await lab.addHosts(3);
    agents = await Promise.all(hosts.map((host, i) => startAgent(uniqueId(`dp${i + 1}`), host.underlay, 8, undefined, ['--netns', host.netns])));
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'wire', cidr: '10.99.0.0/24' }), 201);
    const vmOn = (name: string, agent: RunningAgent) => expectOk(createVmOn({ name, networkId, hostId: agent.hostId }), 201);
    const [a, b] = await Promise.all([vmOn('client', agents[0]!), vmOn('server', agents[1]!)]);
    client = await lab.plugVm(a.vmId, a.ip, hosts[0]!);
    server = await lab.plugVm(b.vmId, b.ip, hosts[1]!);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
    await lab.destroy();
  });

  it('says it programs real tunnels, in which namespace', async () => {
    const status = await agents[0]!.status();
    expect(status.mode).toBe('linux-vxlan');
    expect(status.dataPlane.reason).toBe(`programming VXLAN tunnels in network namespace ${lab.hosts[0]!.netns} (underlay ${lab.hosts[0]!.underlay})`);
  });

  it('carries VM-to-VM traffic across hosts, and keeps it going (same TCP connection) while the server VM migrates', async () => {
    await lab.startProbe(server, ['echo', '7000']);
    // The first packets flow once both agents have programmed the network.
    await eventually(
      async () => {
        probe = await lab.startProbe(client, ['probe', server.ip, '7000', '5']);
      },
      20_000,
      200,
    );
    await eventually(async () => expect((await probe.report()).udp.received).toBeGreaterThan(20), 10_000, 100);
    const before = await probe.report(true);
    expect(before.tcp).toMatchObject({ connected: true, closed: false });

    // The VM runtime moves the server to host 3 (unplugged from host 2, plugged in there); then the control plane is told.
    await lab.moveVm(server.vmId, lab.hosts[2]!);
    const moved = Date.now();
    await expectOk(migrateVmTo(server.vmId, agents[2]!.hostId));

    await eventually(
      async () => {
        const now = await probe.report();
        expect(now.udp.gapEndedAt).toBeGreaterThan(moved);
        expect(now.tcp.gapEndedAt).toBeGreaterThan(moved);
      },
      30_000,
      100,
    );
    const received = (await probe.report()).udp.received;
    await eventually(async () => expect((await probe.report()).udp.received).toBeGreaterThan(received + 50), 10_000, 100);
    const after = await probe.report();
    // The same TCP connection carried on: nothing reset it, and echoes came back after the move.
    expect(after.tcp).toMatchObject({ connected: true, closed: false });
    expect(after.tcp.error).toBeUndefined();
    expect(after.tcp.received).toBeGreaterThan(0);
    console.log(
      `interruption: UDP ${after.udp.longestGapMs} ms, TCP ${after.tcp.longestGapMs} ms (${after.udp.sent - after.udp.received} of ${after.udp.sent} datagrams lost)`,
    );
    expect(after.udp.longestGapMs).toBeLessThan(10_000);

    for (const agent of agents) expect((await agent.status()).dataPlane.lastError).toBeUndefined();
  }, 120_000);

  it("keeps forwarding while the client host's agent is down, and its restarted agent adopts the tunnels without a break", async () => {
    const flowing = async () => {
      const { received } = (await probe.report()).udp;
      await eventually(async () => expect((await probe.report()).udp.received).toBeGreaterThan(received + 50), 10_000, 100);
    };
    await agents[0]!.process.stop();
    await flowing();
    await probe.report(true);
    agents[0] = await startAgent(agents[0]!.hostId, lab.hosts[0]!.underlay, 8, undefined, ['--netns', lab.hosts[0]!.netns]);
    await eventually(async () => expect((await agents[0]!.status()).stats.resyncs).toBeGreaterThan(0), 10_000, 100);
    await flowing();
    const report = await probe.report();
    expect(report.udp.longestGapMs).toBeLessThan(500);
    expect((await agents[0]!.status()).dataPlane).toMatchObject({ mode: 'linux-vxlan', networks: 1 });
  }, 60_000);
});
