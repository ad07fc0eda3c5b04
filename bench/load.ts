import { fork, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createApiClient, type ApiAnswer, type ApiClient } from '#events/api-client.ts';
import type { OperationId } from '#events/operations.ts';
import { startLocalStack } from '../local/local-stack.ts';
import { projectRoot } from '../local/processes.ts';
import { NetworkPlacement } from '#events/vm-lifecycle.ts';
import type { PoolCommand, PoolReport } from './agent-pool.ts';
import { awsCallsByAction, awsCallsByCaller, functionTimes, growth } from './counters.ts';

/**
 * Load: concurrent tenants create, migrate and delete VMs (each tenant one request after another,
 * in its own network) while simulated hosts, many to a process, run real host agents. Measured at
 * each step of agents (e.g. 100, then 1,000): requests per second, API latency, and how long each
 * create's or migration's new endpoint takes from the API's answer to the last host that needs it.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: {
    agents: { type: 'string', default: '100,1000' },
    tenants: { type: 'string', default: '12' },
    seconds: { type: 'string', default: '60' },
    'agents-per-process': { type: 'string', default: '250' },
    // A whole cycle of the authorizer's one-minute cache: every agent's token is authorized again once
    // a minute whatever it does, and agents registered together expire together, so a shorter window
    // samples that unevenly and charges the requests with part of it.
    'idle-seconds': { type: 'string', default: '60' },
    /** How the tenants' networks place their VMs (CreateNetworkRequest.placement). */
    placement: { type: 'string', default: 'spread' },
  },
});
const placementAsked = NetworkPlacement.safeParse(values.placement);
if (!placementAsked.success) throw new Error(`--placement: spread or pack, not ${values.placement}`);
const placement = placementAsked.data;
const steps = values.agents!.split(',').map(Number);
const tenantCount = Number(values.tenants);
const seconds = Number(values.seconds);
const perProcess = Number(values['agents-per-process']);
const idleSeconds = Number(values['idle-seconds']);
if (
  steps.some((n) => !(n >= 2)) ||
  steps.some((n, i) => i > 0 && n <= steps[i - 1]!) ||
  !(tenantCount >= 1) ||
  !(seconds >= 5) ||
  !(perProcess >= 1) ||
  !(idleSeconds >= 5)
) {
  throw new Error('--agents: rising counts of at least 2 (100,1000); --tenants >= 1; --seconds >= 5; --agents-per-process >= 1; --idle-seconds >= 5');
}

const stateDir = path.join(projectRoot, '.local-run', `bench-load-${process.pid}`);
console.error(`starting the local control plane (one region, no agents yet)...`);
// The counting proxy says what each step cost in AWS calls.
const stack = await startLocalStack({
  agentCount: 0,
  regions: ['us-east-1'],
  stateDir,
  awsProxy: true,
  log: (line) => line.startsWith('[local-aws]') && console.error(line),
});
const apiUrl = stack.runner.apiUrl;

// ---- simulated hosts, in pool processes -------------------------------------------------------
const pools: ChildProcess[] = [];
const hostIds: string[] = [];
/** vmId → hostId → highest version applied, and when. */
const applied = new Map<string, Map<string, { version: number; at: number }>>();

function onApplied(hostId: string, vmId: string, version: number, at: number) {
  let hosts = applied.get(vmId);
  if (!hosts) {
    hosts = new Map();
    applied.set(vmId, hosts);
  }
  if ((hosts.get(hostId)?.version ?? 0) < version) hosts.set(hostId, { version, at });
  for (const op of pendingByVm.get(vmId) ?? []) if (op.version <= version) arrived(op, hostId, at);
}

async function addHosts(total: number): Promise<number> {
  const began = Date.now();
  const wanted = Array.from({ length: total - hostIds.length }, (_, i) => hostIds.length + i);
  const started: Promise<void>[] = [];
  while (wanted.length > 0) {
    const poolIndex = Math.floor(wanted[0]! / perProcess);
    const batch = wanted.splice(0, perProcess - (wanted[0]! % perProcess));
    const pool = pools[poolIndex] ?? spawnPool(poolIndex);
    const hosts = batch.map((index) => ({ hostId: `load-${index + 1}`, address: `100.${64 + (index >> 16)}.${(index >> 8) & 255}.${index & 255}` }));
    hostIds.push(...hosts.map((host) => host.hostId));
    started.push(
      new Promise((resolve, reject) => {
        const listener = (report: PoolReport) => {
          if (report.type === 'failed') reject(new Error(`agent pool ${poolIndex}: ${report.message}`));
          if (report.type !== 'started') return;
          pool.off('message', listener);
          resolve();
        };
        pool.on('message', listener);
        pool.send({ type: 'start', apiUrl, capacity: 32, hosts } satisfies PoolCommand);
      }),
    );
  }
  await Promise.all(started);
  return Date.now() - began;
}

function spawnPool(index: number): ChildProcess {
  const pool = fork(path.join(projectRoot, 'bench/agent-pool.ts'), [], {
    execArgv: ['--import', 'tsx'],
    env: {
      ...process.env,
      AWS_ENDPOINT_URL: stack.aws.endpoint,
      AWS_REGION: stack.runner.region,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      STRATOPLANE_POOL_LOG: path.join(stateDir, `pool-${index}.log`),
    },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  pool.on('message', (report: PoolReport) => {
    if (report.type === 'applied') for (const [hostId, vmId, version, at] of report.events) onApplied(hostId, vmId, version, at);
  });
  pools[index] = pool;
  return pool;
}

// ---- convergence: from the API's answer to the last host that needs the endpoint --------------
interface PendingOp {
  vmId: string;
  version: number;
  networkId: string;
  answeredAt: number;
  waiting: Set<string>;
  lastAt: number;
  step: Step;
}
const pendingByVm = new Map<string, PendingOp[]>();

function expectConvergence(op: PendingOp) {
  for (const [hostId, held] of applied.get(op.vmId) ?? []) if (held.version >= op.version) arrived(op, hostId, held.at);
  if (op.waiting.size > 0) pendingByVm.set(op.vmId, [...(pendingByVm.get(op.vmId) ?? []), op]);
}

function arrived(op: PendingOp, hostId: string, at: number) {
  if (!op.waiting.delete(hostId)) return;
  op.lastAt = Math.max(op.lastAt, at);
  if (op.waiting.size === 0) settle(op);
}

/** A host that no longer runs a VM of the network will not be sent the endpoint: stop waiting for it. */
function hostLeft(networkId: string, hostId: string) {
  for (const ops of pendingByVm.values())
    for (const op of ops) if (op.networkId === networkId && op.waiting.delete(hostId) && op.waiting.size === 0) settle(op);
}

function settle(op: PendingOp) {
  op.step.convergence.push(Math.max(0, op.lastAt - op.answeredAt));
  const rest = (pendingByVm.get(op.vmId) ?? []).filter((other) => other !== op);
  if (rest.length > 0) pendingByVm.set(op.vmId, rest);
  else pendingByVm.delete(op.vmId);
}

// ---- tenants ----------------------------------------------------------------------------------
interface Step {
  agents: number;
  registerMs: number;
  latency: Record<'create' | 'migrate' | 'delete', number[]>;
  errors: Map<string, number>;
  convergence: number[];
  notConverged: number;
  /** Endpoints whose VM was deleted before every host that needed them had them: not counted either way. */
  superseded: number;
  /** How many hosts each tenant's network ran on, taken after each of its requests. */
  networkHosts: number[];
  seconds: number;
  /** From the first request to the last answer and the endpoints' arrival (or the wait's end). */
  elapsedSeconds: number;
  /** AWS calls during the step, by `service action`, and the time they took (ms, summed). */
  awsCalls: Map<string, number>;
  awsDurationsMs: Map<string, number>;
  /** AWS calls per second before the step, the agents running and no tenant asking anything: heartbeats, resyncs, renewals. */
  background: Map<string, number>;
  /** The same two, by who made the calls and what they were (`caller\tservice action`), polls that found nothing left out. */
  byCaller: Map<string, number>;
  backgroundByCaller: Map<string, number>;
  /** Function invocations during the step, by function, and the time they ran (ms, summed). */
  invocations: Map<string, number>;
  functionMs: Map<string, number>;
}

/**
 * A step's own AWS calls per request by who made them (a function, the host agents), the
 * background taken out as for the totals, each with its three biggest kinds of call.
 */
function byCaller(step: Step, requests: number): string {
  const callers = new Map<string, { total: number; calls: Map<string, number> }>();
  for (const [key, count] of step.byCaller) {
    const own = count - (step.backgroundByCaller.get(key) ?? 0) * step.elapsedSeconds;
    if (own <= 0) continue;
    const [signer, call] = key.split('\t') as [string, string];
    // The simulated agents sign with the bench's own keys, which no principal was registered for.
    const caller = signer === 'unregistered' ? 'agents' : signer;
    const entry = callers.get(caller) ?? { total: 0, calls: new Map() };
    entry.total += own;
    entry.calls.set(call, own);
    callers.set(caller, entry);
  }
  return [...callers]
    .sort((a, b) => b[1].total - a[1].total)
    .filter(([, { total }]) => total / requests >= 0.05)
    .map(
      ([caller, { total, calls }]) =>
        `${caller} ${(total / requests).toFixed(1)} (${[...calls]
          .sort((a, b) => b[1] - a[1])
          .slice(0, 3)
          .map(([call, count]) => `${call} ${(count / requests).toFixed(1)}`)
          .join(', ')})`,
    )
    .join('; ');
}

interface Tenant {
  index: number;
  api: ApiClient;
  networkId: string;
  vms: Map<string, { hostId: string }>;
  made: number;
}

/** The whole answer; a refusal is counted by status and message. Its latency either way. */
async function timed<Id extends OperationId>(step: Step, kind: keyof Step['latency'], send: () => Promise<ApiAnswer<Id>>): Promise<ApiAnswer<Id>> {
  const began = performance.now();
  const answer = await send();
  step.latency[kind].push(performance.now() - began);
  if (!answer.ok) {
    const key = `${kind} ${answer.status} ${answer.error.detail.replace(/[a-z]+-[a-z0-9]+/g, '…')}`;
    step.errors.set(key, (step.errors.get(key) ?? 0) + 1);
  }
  return answer;
}

const hostsOf = (tenant: Tenant) => new Set([...tenant.vms.values()].map((vm) => vm.hostId));

/** One request, chosen to keep a tenant between 3 and 12 VMs: create, migrate (most often) or delete. */
async function nextOperation(tenant: Tenant, step: Step) {
  const roll = Math.random();
  const ids = [...tenant.vms.keys()];
  if (ids.length < 3 || (roll < 0.3 && ids.length < 12)) {
    const name = `t${tenant.index}-vm${tenant.made++}`;
    const answer = await timed(step, 'create', () => tenant.api.send('createVm', { body: { name, networkId: tenant.networkId, clientToken: name } }));
    if (!answer.ok) return;
    const vm = answer.body;
    tenant.vms.set(vm.vmId, { hostId: vm.hostId });
    expectConvergence({
      vmId: vm.vmId,
      version: vm.endpoint.version,
      networkId: tenant.networkId,
      answeredAt: Date.now(),
      waiting: hostsOf(tenant),
      lastAt: 0,
      step,
    });
  } else if (roll < 0.75) {
    const vmId = ids[Math.floor(Math.random() * ids.length)]!;
    const from = tenant.vms.get(vmId)!.hostId;
    // Tenants do not pick hosts: placement moves the VM to another one.
    const answer = await timed(step, 'migrate', () => tenant.api.send('migrateVm', { params: { vmId }, body: {} }));
    if (!answer.ok) return;
    const vm = answer.body;
    tenant.vms.set(vmId, { hostId: vm.hostId });
    if (!hostsOf(tenant).has(from)) hostLeft(tenant.networkId, from);
    expectConvergence({ vmId, version: vm.endpoint.version, networkId: tenant.networkId, answeredAt: Date.now(), waiting: hostsOf(tenant), lastAt: 0, step });
  } else {
    const vmId = ids[Math.floor(Math.random() * ids.length)]!;
    const from = tenant.vms.get(vmId)!.hostId;
    if (!(await timed(step, 'delete', () => tenant.api.send('deleteVm', { params: { vmId } }))).ok) return;
    tenant.vms.delete(vmId);
    // A host that had not yet applied the VM's last endpoint may now never see it, only its release.
    const superseded = pendingByVm.get(vmId) ?? [];
    for (const op of superseded) op.step.superseded++;
    pendingByVm.delete(vmId);
    if (!hostsOf(tenant).has(from)) hostLeft(tenant.networkId, from);
  }
}

async function runStep(tenants: Tenant[], step: Step) {
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    tenants.map(async (tenant) => {
      while (Date.now() < deadline) {
        await nextOperation(tenant, step);
        step.networkHosts.push(hostsOf(tenant).size);
      }
    }),
  );
  // What was answered last may still be on its way to the hosts.
  const settleBy = Date.now() + 30_000;
  while (Date.now() < settleBy && [...pendingByVm.values()].some((ops) => ops.some((op) => op.step === step)))
    await new Promise((resolve) => setTimeout(resolve, 200));
  for (const [vmId, ops] of pendingByVm) {
    const others = ops.filter((op) => op.step !== step);
    step.notConverged += ops.length - others.length;
    if (others.length) pendingByVm.set(vmId, others);
    else pendingByVm.delete(vmId);
  }
}

// ---- report -----------------------------------------------------------------------------------
const quantile = (samples: number[], q: number) => {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const ms = (value: number) => (Number.isNaN(value) ? '     -' : value.toFixed(0).padStart(6));
const operationsOf = (step: Step) => step.latency.create.length + step.latency.migrate.length + step.latency.delete.length;
const allLatencies = (step: Step) => [...step.latency.create, ...step.latency.migrate, ...step.latency.delete];

try {
  const tenants: Tenant[] = await Promise.all(
    Array.from({ length: tenantCount }, async (_, index) => {
      const api = createApiClient({ baseUrl: apiUrl, token: await stack.issueToken('tenant', `load-${index}`), timeoutMs: 120_000 });
      const { networkId } = await api.createNetwork({
        body: { name: 'load', cidr: `10.${100 + (index >> 4)}.${(index & 15) * 16}.0/20`, placement, clientToken: 'load' },
      });
      return { index, api, networkId, vms: new Map(), made: 0 };
    }),
  );

  const results: Step[] = [];
  for (const agents of steps) {
    console.error(`starting agents up to ${agents} (${Math.ceil(agents / perProcess)} process(es))...`);
    const registerMs = await addHosts(agents);
    console.error(
      `${agents} agents running (the new ones registered and resynced in ${(registerMs / 1000).toFixed(1)} s); ${tenantCount} tenants for ${seconds} s...`,
    );
    // No AWS calls are counted without the proxy (an emulator named by AWS_ENDPOINT_URL).
    const awsCalls = () => awsCallsByAction(stack.aws.proxy?.snapshot() ?? []);
    const callerCalls = () => awsCallsByCaller(stack.aws.proxy?.snapshot() ?? []);
    // What the fleet costs with nobody asking anything, taken out of each request's count below.
    console.error(`measuring ${idleSeconds} s of the fleet's background (heartbeats, resyncs, renewals)...`);
    const [idleBefore, idleByCallerBefore] = [awsCalls().calls, callerCalls()];
    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
    const background = new Map([...growth(awsCalls().calls, idleBefore)].map(([key, count]) => [key, count / idleSeconds] as const));
    const backgroundByCaller = new Map([...growth(callerCalls(), idleByCallerBefore)].map(([key, count]) => [key, count / idleSeconds] as const));
    const [callsBefore, byCallerBefore, functionsBefore] = [awsCalls(), callerCalls(), await functionTimes(stack)];
    const step: Step = {
      agents,
      registerMs,
      latency: { create: [], migrate: [], delete: [] },
      errors: new Map(),
      convergence: [],
      notConverged: 0,
      superseded: 0,
      networkHosts: [],
      seconds,
      elapsedSeconds: 0,
      awsCalls: new Map(),
      awsDurationsMs: new Map(),
      background,
      byCaller: new Map(),
      backgroundByCaller,
      invocations: new Map(),
      functionMs: new Map(),
    };
    const began = Date.now();
    await runStep(tenants, step);
    step.elapsedSeconds = (Date.now() - began) / 1000;
    const [callsAfter, byCallerAfter, functionsAfter] = [awsCalls(), callerCalls(), await functionTimes(stack)];
    step.awsCalls = growth(callsAfter.calls, callsBefore.calls);
    step.byCaller = growth(byCallerAfter, byCallerBefore);
    step.awsDurationsMs = growth(callsAfter.durationsMs, callsBefore.durationsMs);
    const field = (times: Map<string, { invocations: number; durationMs: number }>, key: 'invocations' | 'durationMs') =>
      new Map([...times].map(([name, counts]) => [name, counts[key]] as const));
    step.invocations = growth(field(functionsAfter, 'invocations'), field(functionsBefore, 'invocations'));
    step.functionMs = growth(field(functionsAfter, 'durationMs'), field(functionsBefore, 'durationMs'));
    results.push(step);
  }

  console.log(
    `\nbench:load  ${tenantCount} tenants, each one request after another (create / migrate / delete VMs, 3-12 VMs in its own network, placement ${placement}), ${seconds} s per step; simulated host agents, up to ${perProcess} per process`,
  );
  console.log(
    'agents   requests  req/s   API p50   API p99 (ms)   create p99  migrate p99  delete p99   convergence p50   p99 (ms)   not converged  deleted first  errors',
  );
  for (const step of results) {
    const all = allLatencies(step);
    const errors = [...step.errors.values()].reduce((sum, count) => sum + count, 0);
    console.log(
      `${String(step.agents).padStart(6)}   ${String(operationsOf(step)).padStart(8)}  ${(operationsOf(step) / step.seconds).toFixed(1).padStart(5)}   ${ms(quantile(all, 0.5))}    ${ms(quantile(all, 0.99))}          ${ms(quantile(step.latency.create, 0.99))}       ${ms(quantile(step.latency.migrate, 0.99))}      ${ms(quantile(step.latency.delete, 0.99))}           ${ms(quantile(step.convergence, 0.5))}    ${ms(quantile(step.convergence, 0.99))}   ${String(step.notConverged).padStart(13)}  ${String(step.superseded).padStart(13)}  ${errors}`,
    );
  }
  const [first, last] = [results[0]!, results.at(-1)!];
  if (results.length > 1) {
    const factor = (a: number, b: number) => `×${(b / a).toFixed(2)}`;
    console.log(
      `growth ${first.agents} → ${last.agents} agents: req/s ${factor(operationsOf(first), operationsOf(last))}, API p50 ${factor(quantile(allLatencies(first), 0.5), quantile(allLatencies(last), 0.5))}, API p99 ${factor(quantile(allLatencies(first), 0.99), quantile(allLatencies(last), 0.99))}, convergence p50 ${factor(quantile(first.convergence, 0.5), quantile(last.convergence, 0.5))}, p99 ${factor(quantile(first.convergence, 0.99), quantile(last.convergence, 0.99))}`,
    );
  }
  for (const step of results) for (const [error, count] of step.errors) console.log(`  at ${step.agents} agents: ${count} × ${error}`);
  const perStep: string[] = [];
  for (const step of results) {
    const requests = operationsOf(step);
    const perRequest = (counts: Map<string, number>, top = 8) =>
      [...counts]
        .sort((a, b) => b[1] - a[1])
        .slice(0, top)
        .map(([key, count]) => `${key} ${(count / requests).toFixed(1)}`)
        .join(', ');
    const total = (counts: Map<string, number>) => [...counts.values()].reduce((sum, count) => sum + count, 0);
    const isEmptyPoll = (key: string) => key.endsWith('(empty)');
    // Stream reads are Lambda's own polling (not billed on AWS) and go on whether anything changed.
    const isWork = (key: string) => !isEmptyPoll(key) && !key.startsWith('dynamodbstreams ');
    const work = new Map([...step.awsCalls].filter(([key]) => isWork(key)));
    const emptyPolls = new Map([...step.awsCalls].filter(([key]) => isEmptyPoll(key)));
    const background = new Map([...step.background].filter(([key]) => isWork(key)));
    // The requests' own calls: what ran during the step less what the fleet makes anyway in as long.
    const ownCalls = new Map(
      [...work].map(([key, count]) => [key, Math.max(0, count - (background.get(key) ?? 0) * step.elapsedSeconds)] as const).filter(([, count]) => count > 0),
    );
    const ownPerRequest = total(ownCalls) / requests;
    console.log(
      `\nat ${step.agents} agents, per tenant request (what ran during the step's ${step.elapsedSeconds.toFixed(0)} s, divided by its ${requests} requests):`,
    );
    const meanHosts = step.networkHosts.reduce((sum, hosts) => sum + hosts, 0) / Math.max(1, step.networkHosts.length);
    console.log(`  hosts a tenant's network ran on: ${meanHosts.toFixed(1)} on average (each endpoint change reaches every one of them)`);
    console.log(`  function invocations ${(total(step.invocations) / requests).toFixed(1)}: ${perRequest(step.invocations)}`);
    console.log(`  AWS calls, all ${(total(work) / requests).toFixed(1)}: ${perRequest(work)}`);
    console.log(
      `  of which the fleet's background, measured for ${idleSeconds} s before with no request: ${total(background).toFixed(1)}/s (${((total(background) * step.elapsedSeconds) / requests).toFixed(1)} a request): ${[
        ...background,
      ]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([key, rate]) => `${key} ${rate.toFixed(1)}/s`)
        .join(', ')}`,
    );
    console.log(`  AWS calls the requests made, the background taken out ${ownPerRequest.toFixed(1)}: ${perRequest(ownCalls, 10)}`);
    console.log(`  the same by who made them: ${byCaller(step, requests)}`);
    console.log(
      `  and polls that found nothing, ${(total(emptyPolls) / step.seconds).toFixed(0)}/s: ${[...emptyPolls].map(([key, count]) => `${key} ${(count / step.seconds).toFixed(1)}/s`).join(', ')}`,
    );
    // Where an API request's time went: the route functions (what the API waited for) and the AWS calls inside them.
    const meanMs = (durations: Map<string, number>, counts: Map<string, number>, keys: string[]) => {
      const calls = keys.reduce((sum, key) => sum + (counts.get(key) ?? 0), 0);
      return calls > 0 ? keys.reduce((sum, key) => sum + (durations.get(key) ?? 0), 0) / calls : NaN;
    };
    const routes = [...step.invocations].filter(([name]) => /^(PostVms|PostVmsVmIdMigrate|DeleteVmsVmId)$/.test(name));
    const dynamodbKeys = [...step.awsCalls.keys()].filter((key) => key.startsWith('dynamodb '));
    console.log(
      `  where the API's time went: p50 ${ms(quantile(allLatencies(step), 0.5)).trim()} ms; route functions (mean ms a call): ${routes
        .map(([name, count]) => `${name} ${((step.functionMs.get(name) ?? 0) / count).toFixed(0)}`)
        .join(', ')}; a DynamoDB call ${meanMs(step.awsDurationsMs, step.awsCalls, dynamodbKeys).toFixed(0)} ms (${[...step.awsCalls]
        .filter(([key]) => key.startsWith('dynamodb '))
        .reduce((sum, [, count]) => sum + count, 0)} calls in the step, ${(
        [...step.awsCalls].filter(([key]) => key.startsWith('dynamodb ')).reduce((sum, [, count]) => sum + count, 0) / step.elapsedSeconds
      ).toFixed(0)}/s); all functions together busy ${(total(step.functionMs) / 1000 / step.elapsedSeconds).toFixed(1)} s a second`,
    );
    perStep.push(`aws_calls_per_request agents=${step.agents} calls=${ownPerRequest.toFixed(1)} placement=${placement}`);
  }
  console.log('');
  for (const line of perStep) console.log(line);
} finally {
  await Promise.all(
    pools.map(
      (pool) =>
        new Promise<void>((resolve) => {
          pool.once('exit', () => resolve());
          pool.send({ type: 'stop' } satisfies PoolCommand);
          setTimeout(() => pool.kill('SIGKILL'), 20_000).unref();
        }),
    ),
  );
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
