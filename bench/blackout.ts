import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DataPlaneLab, labUnavailableReason } from '../local/data-plane/lab.ts';
import { startLocalStack, type AgentInfo } from '../local/local-stack.ts';
import { agentStatus } from '../host-agent/agent-control-client.ts';
import { projectRoot } from '../local/processes.ts';
import { apiClient } from './api-client.ts';
import { retry, until } from './waiting.ts';

/**
 * Traffic interruption during a migration, on real tunnels: three hosts (network namespaces whose
 * agents program VXLAN), a client VM on host 1 sending a UDP datagram and a TCP line every 5 ms to
 * a server VM, and the server moved back and forth between hosts 2 and 3. For each migration: the
 * longest silence the client saw (UDP replies; TCP echoes, which also wait for retransmission),
 * and the control plane's convergence, from the API's answer until every agent that needs the
 * endpoint applied it (agents' own clock), and until the API reported it converged (acknowledgements).
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  // --runtime qemu is bench/blackout-qemu.ts's (real guests moving live); this one's VMs are namespaces.
  options: { migrations: { type: 'string', default: '10' }, runtime: { type: 'string', default: 'process' } },
});
const migrations = Number(values.migrations);
if (!(migrations >= 1)) throw new Error('--migrations must be >= 1');
if (values.runtime !== 'process')
  throw new Error(`--runtime is process (namespaces moved by the bench) or qemu (real guests moving live), not ${values.runtime}`);

const unavailable = await labUnavailableReason();
if (unavailable) {
  console.error(`bench:blackout needs real network namespaces: ${unavailable}`);
  process.exit(1);
}

const lab = new DataPlaneLab(`b${process.pid % 100_000}`);
const stateDir = path.join(projectRoot, '.local-run', `bench-${process.pid}`);
try {
  const hosts = await lab.addHosts(3);
  console.error('starting the local control plane with 3 agents programming VXLAN in their host namespaces...');
  const stack = await startLocalStack({
    agentCount: 3,
    hostPrefix: `bb${process.pid}`,
    agentHosts: hosts.map(({ underlay, netns }) => ({ address: underlay, netns })),
    stateDir,
    log: (line) => /^\[local-aws\]|data plane/.test(line) && console.error(line),
  });
  try {
    const api = await apiClient(stack, 'tenant', 'bench-blackout');
    // Tenants do not pick hosts: the bench pins VMs as the operator, for its tenant.
    const operator = await apiClient(stack, 'operator', 'bench');
    const [host1, host2, host3] = stack.agents as [AgentInfo, AgentInfo, AgentInfo];
    const { networkId } = await api.createNetwork({ body: { name: 'blackout', cidr: '10.201.0.0/24' } });
    const clientVm = await operator.createVm({ body: { name: 'client', networkId, hostId: host1.hostId, tenantId: 'bench-blackout' } });
    const serverVm = await operator.createVm({ body: { name: 'server', networkId, hostId: host2.hostId, tenantId: 'bench-blackout' } });
    const client = await lab.plugVm(clientVm.vmId, clientVm.ip, hosts[0]!);
    const server = await lab.plugVm(serverVm.vmId, serverVm.ip, hosts[1]!);
    await lab.startProbe(server, ['echo', '7000']);
    const probe = await retry(() => lab.startProbe(client, ['probe', server.ip, '7000', '5']), 20_000);
    await until(async () => (await probe.report()).udp.received > 50, 10_000, 'traffic before the first migration');

    const appliedAt = async (agent: AgentInfo, version: number) => {
      const entry = (await agentStatus(agent.controlSocket)).networks[networkId]?.entries[server.ip];
      return entry && entry.version >= version ? (entry.appliedAt as number) : undefined;
    };
    const samples: { udp: number; tcp: number; applied: number; reported: number }[] = [];
    for (let i = 0; i < migrations; i++) {
      const [targetIndex, target] = i % 2 === 0 ? [2, host3] : [1, host2];
      await probe.report(true);
      await lab.moveVm(server.vmId, hosts[targetIndex]!);
      const unplugged = Date.now();
      const moved = await operator.migrateVm({ params: { vmId: server.vmId }, body: { targetHostId: target.hostId } });
      const answered = Date.now();
      // Every host that needs the endpoint: the client's and the server's new one.
      let applied = 0;
      let reported = 0;
      await until(
        async () => {
          if (!applied) {
            const times = await Promise.all([host1, target].map((agent) => appliedAt(agent, moved.endpoint.version)));
            if (times.every((time) => time !== undefined)) applied = Math.max(...(times as number[])) - answered;
          }
          if (!reported && (await api.getVmConvergence({ params: { vmId: server.vmId } })).converged) reported = Date.now() - answered;
          const now = await probe.report();
          return applied > 0 && reported > 0 && now.udp.gapEndedAt > unplugged && now.tcp.gapEndedAt > unplugged;
        },
        30_000,
        `migration ${i + 1}: traffic did not resume or the endpoint did not converge`,
      );
      // A little more traffic, so the window's longest gap is the migration's.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const report = await probe.report();
      if (report.tcp.closed || report.tcp.error) throw new Error(`migration ${i + 1}: the TCP connection broke (${report.tcp.error ?? 'closed'})`);
      samples.push({ udp: report.udp.longestGapMs, tcp: report.tcp.longestGapMs, applied, reported });
    }

    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
    const line = (label: string, values: number[]) =>
      console.log(
        `  ${label.padEnd(58)} median ${median(values).toFixed(0).padStart(5)} ms   worst ${Math.max(...values)
          .toFixed(0)
          .padStart(5)} ms`,
      );
    console.log(`bench:blackout  migrations=${migrations}  hosts=3 (network namespaces, VXLAN)  probe interval 5 ms`);
    line(
      'traffic interruption, UDP (longest silence at the client)',
      samples.map((sample) => sample.udp),
    );
    line(
      'traffic interruption, TCP (same connection throughout)',
      samples.map((sample) => sample.tcp),
    );
    line(
      'control plane: API answer -> every needing agent applied',
      samples.map((sample) => sample.applied),
    );
    line(
      'control plane: API answer -> API reports converged',
      samples.map((sample) => sample.reported),
    );
    console.log("  the interruption runs from unplugging the VM on its old host, through the migrate call, to the client's first reply after it");
  } finally {
    await stack.stop();
  }
} finally {
  await lab.destroy();
  rmSync(stateDir, { recursive: true, force: true });
}
