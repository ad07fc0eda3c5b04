import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { startLocalStack, type AgentInfo } from '../local/local-stack.ts';
import { agentStatus } from '../host-agent/agent-control-client.ts';
import { projectRoot } from '../local/processes.ts';
import { apiClient } from './api-client.ts';

/**
 * Migration convergence: with N host agents in one network, migrate a VM K times and measure, for
 * each migration, the time from the API request to the moment the last agent applied the new
 * endpoint (agents stamp each entry with the time they applied it).
 */
const { values } = parseArgs({
  // argv[2] is the bench name.
  args: process.argv.slice(3),
  options: { agents: { type: 'string', default: '6' }, migrations: { type: 'string', default: '40' } },
});
const agentCount = Number(values.agents);
const migrations = Number(values.migrations);
if (!(agentCount >= 2) || !(migrations >= 1)) throw new Error('--agents must be >= 2 and --migrations >= 1');

console.error(`starting the local control plane with ${agentCount} agents...`);
const stateDir = path.join(projectRoot, '.local-run', `bench-${process.pid}`);
const stack = await startLocalStack({ agentCount, hostPrefix: 'bench', stateDir, log: (line) => line.startsWith('[local-aws]') && console.error(line) });
try {
  const api = await apiClient(stack, 'tenant', 'bench');
  // Tenants do not pick hosts: the bench pins VMs as the operator, for its tenant.
  const operator = await apiClient(stack, 'operator', 'bench');
  const appliedAt = async (agent: AgentInfo, networkId: string, ip: string, version: number) => {
    const status = await agentStatus(agent.controlSocket);
    const entry = status.networks[networkId]?.entries[ip];
    return entry && entry.version >= version ? (entry.appliedAt as number) : undefined;
  };

  const { networkId } = await api.createNetwork({ body: { name: 'bench', cidr: '10.200.0.0/20' } });
  // One VM per host keeps every agent a member of the network, so every migration reaches all N.
  for (const agent of stack.agents) await operator.createVm({ body: { name: `anchor-${agent.hostId}`, networkId, hostId: agent.hostId, tenantId: 'bench' } });
  const mover = await operator.createVm({ body: { name: 'mover', networkId, hostId: stack.agents[0]!.hostId, tenantId: 'bench' } });

  const samples: number[] = [];
  const answers: number[] = [];
  /** Last agent applied, from the answer (negative: before it arrived). */
  const afterAnswer: number[] = [];
  for (let i = 0; i < migrations; i++) {
    // A random pause, so migrations do not fall into step with the stream poller's cycle.
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 300));
    const target = stack.agents[(i + 1) % agentCount]!;
    // From the request: the migrate function sends the new endpoint to the hosts itself (the fast
    // path), so agents may apply it before its answer arrives here.
    const requestedAt = Date.now();
    const moved = await operator.migrateVm({ params: { vmId: mover.vmId }, body: { targetHostId: target.hostId } });
    const answeredAt = Date.now();
    answers.push(answeredAt - requestedAt);
    const deadline = answeredAt + 30_000;
    let times: (number | undefined)[] = [];
    while (Date.now() < deadline) {
      times = await Promise.all(stack.agents.map((agent) => appliedAt(agent, networkId, mover.ip, moved.endpoint.version)));
      if (times.every((time) => time !== undefined)) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (times.some((time) => time === undefined)) throw new Error(`migration ${i + 1} did not reach every agent within 30 s`);
    samples.push(Math.max(...(times as number[])) - requestedAt);
    afterAnswer.push(Math.max(...(times as number[])) - answeredAt);
  }

  // The emulator's own round trip, to put the figures above in scale.
  const dynamodb = new DynamoDBClient({
    endpoint: stack.aws.endpoint,
    region: stack.runner.region,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const table = Object.entries(stack.runner.resources).find(([id]) => id.startsWith('Metadata'))![1];
  const roundTrips: number[] = [];
  for (let i = 0; i < 200; i++) {
    const started = performance.now();
    await dynamodb.send(new GetItemCommand({ TableName: table, Key: { pk: { S: `NET#${networkId}` }, sk: { S: 'NET' } } }));
    roundTrips.push(performance.now() - started);
  }

  const pct = (values: number[], p: number) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  };
  const streamPollMs = Number(process.env.STRATOPLANE_STREAM_POLL_MS ?? 250);
  console.log(
    `bench:converge  agents=${agentCount}  migrations=${migrations}  emulator=${stack.aws.started ? `${stack.aws.description} (local process)` : stack.aws.endpoint}`,
  );
  console.log(
    `  API request -> last agent applied:  median ${pct(samples, 50).toFixed(0)} ms   p99 ${pct(samples, 99).toFixed(0)} ms   min ${Math.min(...samples).toFixed(0)} ms   max ${Math.max(...samples).toFixed(0)} ms   (goal: p99 <= 100 ms)`,
  );
  console.log(`  API request -> its answer:          median ${pct(answers, 50).toFixed(0)} ms   p99 ${pct(answers, 99).toFixed(0)} ms`);
  console.log(
    `  API answer -> last agent applied:   median ${pct(afterAnswer, 50).toFixed(0)} ms   p99 ${pct(afterAnswer, 99).toFixed(0)} ms   (negative: every agent had it before the answer came)`,
  );
  console.log(`  emulator round trip (DynamoDB GetItem): median ${pct(roundTrips, 50).toFixed(2)} ms   p99 ${pct(roundTrips, 99).toFixed(2)} ms`);
  console.log(
    `  path: the migrate function -> host queues (the fast path, once its transaction committed); backstop: DynamoDB stream (polled every ${streamPollMs} ms, as Lambda does) -> stream function -> fan-out queue -> fan-out function -> host queues (20 s long polls)`,
  );
} finally {
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
