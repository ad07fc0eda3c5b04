import { generateKeyPairSync } from 'node:crypto';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalStack } from '../local/local-stack.ts';
import { projectRoot } from '../local/processes.ts';
import { takeRunLock } from '../local/run-lock.ts';
import { apiClient } from './api-client.ts';
import type { AwsCallTotal } from '../local/aws/aws-proxy.ts';
import { awsCallsByAction, functionInvocations, growth, untilQuiet } from './counters.ts';
import { awsPrices, projectAt, type Assumptions, type OperationCost } from './cost-model.ts';
import { measureAtScale, type ScaleLine } from './cost-scale.ts';

/**
 * What each operation really costs in AWS requests: every AWS call the control plane, its
 * functions and the host agents make goes through the counting proxy, and each operation is run
 * alone, its calls counted until the system is quiet again (fan-out, acknowledgements and
 * credential refreshes included). Then the same figures are projected to a fleet of hosts.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: {
    repeat: { type: 'string', default: '5' },
    hosts: { type: 'string', default: '100000' },
    'idle-seconds': { type: 'string', default: '60' },
  },
});
const repeat = Number(values.repeat);
const fleetHosts = Number(values.hosts);
const idleSeconds = Number(values['idle-seconds']);
if (!(repeat >= 1) || !(fleetHosts >= 1) || !(idleSeconds >= 20)) throw new Error('--repeat >= 1, --hosts >= 1, --idle-seconds >= 20');

// A local control plane beside an integration run (or another bench) starves both past their readiness limits: one at a time.
await takeRunLock();

const agentCount = 4;
const stateDir = path.join(projectRoot, '.local-run', `bench-cost-${process.pid}`);
console.error(`starting the local control plane (one region) with ${agentCount} agents, every AWS call counted...`);
const stack = await startLocalStack({
  agentCount,
  hostPrefix: 'cost',
  regions: ['us-east-1'],
  stateDir,
  awsProxy: true,
  log: (line) => line.startsWith('[local-aws]') && console.error(line),
});
if (!stack.aws.proxy) {
  await stack.stop();
  throw new Error('bench:cost counts calls through the proxy before the LocalStack it starts itself: unset AWS_ENDPOINT_URL');
}
const proxy = stack.aws.proxy;

/** Calls that only keep pollers going (shard discovery, iterators): Lambda's stream polling, free on AWS. */
const housekeeping = /^dynamodbstreams (DescribeStream|GetShardIterator|ListStreams)/;
const isWork = (key: string) => !key.endsWith('(empty)') && !housekeeping.test(key);

/**
 * What runs whatever an operation does: the agents' heartbeats (a route function, and its write to
 * the liveness table) and the minute's host sweep. Left out of every operation's count and
 * measured on their own (the heartbeats in the idle minute).
 */
// The runner names its global table and queues, not its regional tables: the heartbeats' is found by its construct's name.
const livenessTable = (
  await new DynamoDBClient({ endpoint: stack.aws.endpoint, region: stack.runner.region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }).send(
    new ListTablesCommand({}),
  )
).TableNames?.find((name) => name.includes('Liveness'));
if (!livenessTable) throw new Error('no liveness table: the heartbeats could not be told from the operations');
const BACKGROUND_FUNCTIONS = new Set(['PutHostsHostIdHeartbeat', 'SweepHosts']);
const ofOperations = (total: AwsCallTotal) => !(total.service === 'dynamodb' && total.action === 'PutItem' && total.resource === livenessTable);

interface Counts {
  calls: Map<string, number>;
  readUnits: number;
  writeUnits: number;
  invocations: Map<string, number>;
}

async function counts(): Promise<Counts> {
  const invocations = new Map([...(await functionInvocations(stack))].filter(([name]) => !BACKGROUND_FUNCTIONS.has(name)));
  return { ...awsCallsByAction(proxy.snapshot().filter(ofOperations)), invocations };
}

/** Waits until no work call has been made for `quietMs` (empty polls go on forever). */
const quiet = (quietMs?: number, timeoutMs?: number) =>
  untilQuiet(() => new Map([...awsCallsByAction(proxy.snapshot().filter(ofOperations)).calls].filter(([key]) => isWork(key))), quietMs, timeoutMs);

/** Runs `operation` `repeat` times, each alone (after `prepare`, which is not counted), and averages what it caused. */
async function measure<T>(
  name: string,
  operation: (round: number, prepared: T) => Promise<unknown>,
  prepare: (round: number) => Promise<T> = async () => undefined as T,
): Promise<OperationCost> {
  const sums = { calls: new Map<string, number>(), readUnits: 0, writeUnits: 0, invocations: new Map<string, number>() };
  for (let round = 0; round < repeat; round++) {
    const prepared = await prepare(round);
    await quiet();
    const before = await counts();
    await operation(round, prepared);
    await quiet();
    const after = await counts();
    for (const [key, count] of growth(after.calls, before.calls)) if (isWork(key)) sums.calls.set(key, (sums.calls.get(key) ?? 0) + count);
    for (const [key, count] of growth(after.invocations, before.invocations)) sums.invocations.set(key, (sums.invocations.get(key) ?? 0) + count);
    sums.readUnits += after.readUnits - before.readUnits;
    sums.writeUnits += after.writeUnits - before.writeUnits;
  }
  const average = (map: Map<string, number>) => new Map([...map].map(([key, count]) => [key, count / repeat] as const).sort((a, b) => b[1] - a[1]));
  const cost: OperationCost = {
    name,
    calls: average(sums.calls),
    readUnits: sums.readUnits / repeat,
    writeUnits: sums.writeUnits / repeat,
    invocations: average(sums.invocations),
  };
  console.error(`measured: ${name}`);
  return cost;
}

let finished = false;
try {
  const tenant = await apiClient(stack, 'tenant', 'cost');
  // Tenants do not pick hosts: VMs are pinned (and moved to named hosts) as the operator, for the tenant.
  const operator = await apiClient(stack, 'operator', 'cost');
  const hosts = stack.agents.map((agent) => agent.hostId);
  await operator.registerStoragePool({ body: { poolId: 'cost-pool', capacityGiB: 100_000, iops: 10_000_000, throughputMiBps: 1_000_000 } });
  const spread = await tenant.createNetwork({ body: { name: 'spread', cidr: '10.50.0.0/20' } });
  const pair = await tenant.createNetwork({ body: { name: 'pair', cidr: '10.51.0.0/20' } });
  // `spread` runs VMs on all four hosts, `pair` on two: what a change costs per host of its network.
  for (const hostId of hosts) await operator.createVm({ body: { name: `anchor-${hostId}`, networkId: spread.networkId, hostId, tenantId: 'cost' } });
  for (const hostId of hosts.slice(0, 2)) await operator.createVm({ body: { name: `anchor-${hostId}`, networkId: pair.networkId, hostId, tenantId: 'cost' } });
  const asHost = await apiClient(stack, 'host', hosts[0]!);
  const agentKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });

  const movers: { vmId: string; hostId: string }[] = [];
  const operations: OperationCost[] = [];
  operations.push(
    await measure('register a host', (round) =>
      operator.registerHost({ body: { hostId: `cost-extra-${round}`, address: `198.18.0.${round + 1}`, capacity: 32 } }),
    ),
  );
  operations.push(await measure('create a network', (round) => tenant.createNetwork({ body: { name: `n${round}`, cidr: '10.60.0.0/24' } })));
  operations.push(
    await measure('create a VM (network on 4 hosts)', async (round) => {
      const vm = await operator.createVm({ body: { name: `vm-${round}`, networkId: spread.networkId, hostId: hosts[round % agentCount], tenantId: 'cost' } });
      movers.push({ vmId: vm.vmId, hostId: vm.hostId });
    }),
  );
  operations.push(
    await measure(
      'create a VM (its host joins the network)',
      (round, networkId: string) => operator.createVm({ body: { name: 'first', networkId, hostId: hosts[round % agentCount], tenantId: 'cost' } }),
      async (round) => (await tenant.createNetwork({ body: { name: `join-${round}`, cidr: '10.61.0.0/24' } })).networkId,
    ),
  );
  const migrateCost = await measure('migrate a VM (network on 4 hosts)', (round) =>
    operator.migrateVm({ params: { vmId: movers[round]!.vmId }, body: { targetHostId: hosts.find((hostId) => hostId !== movers[round]!.hostId) } }),
  );
  const pairMovers: string[] = [];
  for (let round = 0; round < repeat; round++)
    pairMovers.push((await operator.createVm({ body: { name: `p-${round}`, networkId: pair.networkId, hostId: hosts[0], tenantId: 'cost' } })).vmId);
  const migratePairCost = await measure('migrate a VM (network on 2 hosts)', (round) =>
    operator.migrateVm({ params: { vmId: pairMovers[round]! }, body: { targetHostId: hosts[1] } }),
  );
  operations.push(migratePairCost, migrateCost);
  operations.push(await measure('delete a VM (network on 4 hosts)', (round) => tenant.deleteVm({ params: { vmId: movers[round]!.vmId } })));
  operations.push(await measure('create a disk', (round) => tenant.createDisk({ body: { name: `d${round}`, sizeGiB: 100 } })));
  const account = await tenant.createServiceAccount({ body: { name: 'cost' } });
  operations.push(
    await measure(
      'attach a service account to a VM',
      (_, vmId: string) => tenant.attachServiceAccount({ params: { vmId }, body: { serviceAccountId: account.serviceAccountId } }),
      async (round) => (await operator.createVm({ body: { name: `sa-${round}`, networkId: pair.networkId, hostId: hosts[0], tenantId: 'cost' } })).vmId,
    ),
  );
  // What every agent does every period (host-agent/agent.ts): the forwarding table; and every hour its VMs' credentials and configs (pair keys among them).
  operations.push(await measure("an agent's periodic resync", () => asHost.getForwardingTable({ params: { hostId: hosts[0]! } })));
  operations.push(
    await measure("an agent's hourly renewal of its VMs' credentials", () =>
      Promise.all([
        asHost.issueHostCredentials({ params: { hostId: hosts[0]! }, body: { publicKey: { kty: 'EC', crv: 'P-256', x: agentKey.x!, y: agentKey.y! } } }),
        asHost.getHostVmConfigs({ params: { hostId: hosts[0]! } }),
      ]),
    ),
  );
  operations.push(await measure('issue an API token (operator)', (round) => stack.issueToken('tenant', `cost-${round}`)));

  // Idle: what waiting costs, per agent (its host queue) and for the functions' queues.
  await quiet();
  const polls = () => {
    const byQueue = { agents: 0, functions: 0 };
    for (const total of proxy.snapshot()) {
      if (total.service !== 'sqs' || !total.action.startsWith('ReceiveMessage')) continue;
      if (total.resource?.startsWith(`${stack.runner.stackName}-host-`)) byQueue.agents += total.calls;
      else byQueue.functions += total.calls;
    }
    return byQueue;
  };
  const heartbeats = async () => (await functionInvocations(stack)).get('PutHostsHostIdHeartbeat') ?? 0;
  const [idleBefore, heartbeatsBefore] = [polls(), await heartbeats()];
  await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
  const [idleAfter, heartbeatsAfter] = [polls(), await heartbeats()];
  const perHour = (count: number) => (count * 3600) / idleSeconds;
  const idle = {
    agentPollsPerAgentHour: perHour(idleAfter.agents - idleBefore.agents) / agentCount,
    functionPollsPerHour: perHour(idleAfter.functions - idleBefore.functions),
    heartbeatsPerAgentHour: perHour(heartbeatsAfter - heartbeatsBefore) / agentCount,
  };

  // Last (it adds 10,000 hosts): what a create costs as the fleet and its network grow.
  const scale = await measureAtScale({ stack, proxy, tenant, operator, repeat, isWork, livenessTable, log: (message) => console.error(message) });

  printReport(operations, idle, migratePairCost, migrateCost, scale);
  finished = true;
} finally {
  await stack.stop();
  // Kept when the bench failed: the emulator's, runner's and agents' logs say why.
  if (finished) rmSync(stateDir, { recursive: true, force: true });
  else console.error(`bench:cost failed: its local stack's logs are in ${stateDir}`);
}

function printReport(
  operations: OperationCost[],
  idle: { agentPollsPerAgentHour: number; functionPollsPerHour: number; heartbeatsPerAgentHour: number },
  twoHosts: OperationCost,
  fourHosts: OperationCost,
  scale: readonly ScaleLine[],
) {
  const sum = (cost: OperationCost, service: string) =>
    [...cost.calls].filter(([key]) => key.startsWith(`${service} `)).reduce((total, [, count]) => total + count, 0);
  // Route functions are named by method and path (PostVms, PutHostsHostIdHeartbeat): one API request each.
  const apiRequests = (cost: OperationCost) =>
    [...cost.invocations].filter(([key]) => /^(Get|Post|Put|Patch|Delete)[A-Z]/.test(key)).reduce((total, [, count]) => total + count, 0);
  const lambda = (cost: OperationCost) =>
    [...cost.invocations].filter(([key]) => !key.startsWith('ApiAuthorizer')).reduce((total, [, count]) => total + count, 0);
  const n = (value: number) => (value === 0 ? '0' : value < 10 ? value.toFixed(1) : value.toFixed(0));
  console.log(
    `\nbench:cost  measured on the local control plane, one region, ${agentCount} host agents; each operation alone, ${repeat} times, averaged; counted until quiet (fan-out, acknowledgements, credential refreshes included)\n`,
  );
  console.log('| operation | Lambda invocations | API requests | DynamoDB calls | read units | write units | SQS requests | KMS requests | S3 requests |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const cost of operations) {
    console.log(
      `| ${cost.name} | ${n(lambda(cost))} | ${n(apiRequests(cost))} | ${n(sum(cost, 'dynamodb'))} | ${n(cost.readUnits)} | ${n(cost.writeUnits)} | ${n(sum(cost, 'sqs'))} | ${n(sum(cost, 'kms'))} | ${n(sum(cost, 's3'))} |`,
    );
  }
  console.log('\nWhere the calls go (per operation, averaged):');
  for (const cost of operations) {
    console.log(
      `- ${cost.name}: ${[...cost.calls].map(([key, count]) => `${key} ${n(count)}`).join(', ')}; functions: ${[...cost.invocations].map(([key, count]) => `${key} ${n(count)}`).join(', ')}`,
    );
  }
  console.log(
    `\nIdle, over ${idleSeconds} s: ${n(idle.agentPollsPerAgentHour)} long polls (ReceiveMessage) per agent per hour; ${n(idle.functionPollsPerHour)} per hour by the functions' queue pollers of the region; ${n(idle.heartbeatsPerAgentHour)} heartbeats per agent per hour (each 1 API request, 1 Lambda invocation, 1 PutItem)`,
  );
  console.log(
    `\nOne VM create (a tenant's, no host named) as the fleet and its network grow: the AWS calls the create request made, ${repeat} creates each, averaged (hosts that take VMs; addresses in use in a /16):`,
  );
  for (const { line, detail } of scale) console.log(`${line}\n  ${detail}`);

  const assumptions: Assumptions = {
    hosts: fleetHosts,
    vmsPerHost: 20,
    vmLifetimeDays: 7,
    migrationsPerVmPerDay: 1 / 7,
    hostsPerNetwork: 10,
    resyncMinutes: 5,
  };
  const projection = projectAt(assumptions, { operations, twoHosts, fourHosts, ...idle, apiRequests, lambda, sum });
  console.log(
    `\nProjected to ${fleetHosts.toLocaleString('en-US')} hosts (${assumptions.vmsPerHost} VMs each, VMs living ${assumptions.vmLifetimeDays} days, each migrated every ${1 / assumptions.migrationsPerVmPerDay} days, networks spanning ${assumptions.hostsPerNetwork} hosts, agents resyncing every ${assumptions.resyncMinutes} min), per 30-day month, us-east-1 list prices:`,
  );
  console.log('| what | per second | per month | $ per month |');
  console.log('|---|---:|---:|---:|');
  for (const line of projection)
    console.log(`| ${line.what} | ${n(line.perSecond)} | ${((line.perSecond * 86_400 * 30) / 1e6).toFixed(0)} M | ${line.dollars.toFixed(0)} |`);
  console.log(`| total | | | ${projection.reduce((total, line) => total + line.dollars, 0).toFixed(0)} |`);
  console.log(
    `\nPrices used: ${Object.entries(awsPrices)
      .map(([key, value]) => `${key} $${value}`)
      .join(', ')}`,
  );
}
