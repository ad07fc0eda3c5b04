import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MACHINE_TYPES } from '#events/vm-lifecycle.ts';
import { accelArgs, chooseAccelerator } from '../host-agent/vm-runtime/accelerator.ts';
import { unpackImageBundle } from '../host-agent/vm-runtime/image-bundle.ts';
import { PID_FILE } from '../host-agent/vm-runtime/leftovers.ts';
import { DataPlaneLab, labUnavailableReason } from '../local/data-plane/lab.ts';
import { ensureGuestImage } from '../local/guest-image/build.ts';
import { publishGuestImage } from '../local/guest-image/publish.ts';
import { startLocalStack } from '../local/local-stack.ts';
import { projectRoot } from '../local/processes.ts';
import { takeRunLock } from '../local/run-lock.ts';
import { apiClient } from './api-client.ts';

/**
 * How long a real guest takes from the tenant's request to being usable, beside how long QEMU alone
 * takes to boot the same image: the limit the control plane's path is measured against.
 *
 * One host (a network namespace) whose agent runs QEMU (`--runtime qemu`); the project's guest
 * image published as a public image. For each VM, one at a time (two cores: concurrent boots would
 * measure each other), from the moment the API is asked (`POST /vms`, pinned to the host as the
 * operator): its first console byte on the host, the guest's line saying what its metadata server
 * told it, and its host keys published (`GET /vms/{id}/host-keys` lists both). Then QEMU's resident
 * memory, and the VM is deleted. The bare boot: `qemu-system-x86_64` with the same kernel,
 * initramfs, command line, memory, vCPUs and accelerator and no control plane, from spawn until
 * the guest says it is ready (its host keys made; it has no NIC, so it publishes nothing).
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  // --trace: each guest console line with when it was first seen, to find where a boot's time goes.
  options: { vms: { type: 'string', default: '10' }, trace: { type: 'boolean', default: false } },
});
const count = Number(values.vms);
if (!(Number.isInteger(count) && count >= 1)) throw new Error('--vms must be a whole number >= 1');

const unavailable = await labUnavailableReason();
if (unavailable) {
  console.error(`bench:boot needs network namespaces and root: ${unavailable}`);
  process.exit(1);
}
const qemuVersion = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
if (qemuVersion.error || qemuVersion.status !== 0) {
  console.error('bench:boot needs qemu-system-x86_64 (.ci/run installs QEMU 10 from bookworm-backports)');
  process.exit(1);
}

// Timings are worth nothing beside an integration run or another bench with guests: one at a time.
await takeRunLock();

const machineType = 's1.nano';
const { memoryMiB, vcpus } = MACHINE_TYPES[machineType];
const accelerator = chooseAccelerator();
const image = await ensureGuestImage({ log: (line) => console.error(line) });
const boot = unpackImageBundle(readFileSync(image.path), mkdtempSync(path.join(tmpdir(), 'bench-boot-'))).boot;
console.error(`${qemuVersion.stdout.split('\n')[0]}; ${accelerator.kind} (${accelerator.reason}); ${machineType}: ${memoryMiB} MiB, ${vcpus} vCPU`);

// A bare QEMU is this process's child only: it goes with it, however the bench ends.
const bareQemus = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of bareQemus) child.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

// The bare boots first, on a quiet machine.
const bare: number[] = [];
for (let i = 0; i < count; i++) bare.push(await bareBoot(i));
console.error(`bare QEMU boot to ready: ${bare.map((ms) => ms.toFixed(0)).join(' ')} ms`);

const lab = new DataPlaneLab(`bt${process.pid % 100_000}`, '172.31.246');
const stateDir = path.join(projectRoot, '.local-run', `bench-boot-${process.pid}`);
let idleCpu = Number.NaN;
const bareBesideStack: number[] = [];
/** When each agent line about a VM's boot arrived, by `<vmId> <placed|booting|guest started>`. */
const agentSaid = new Map<string, number>();
const samples: { placed: number; booting: number; started: number; console: number; metadata: number; published: number; rssMb: number }[] = [];
try {
  const [host] = await lab.addHosts(1);
  console.error('starting the local control plane with one agent running QEMU guests in its host namespace...');
  const stack = await startLocalStack({
    agentCount: 1,
    hostPrefix: `boot${process.pid}`,
    agentHosts: [{ address: host!.underlay, netns: host!.netns }],
    agentEnv: { HOST_AGENT_RUNTIME: 'qemu' },
    stateDir,
    log: (line) => {
      // The agent says when it heard of a VM, began its boot (its launch spec fetched) and started its guest.
      const phase = /vm (vm-[0-9a-f]+)(?: placed here|: (booting|guest started))/.exec(line);
      if (phase) agentSaid.set(`${phase[1]} ${phase[2] ?? 'placed'}`, performance.now());
      if (/^\[local-aws\]|qemu|failed|error/i.test(line)) console.error(line);
    },
  });
  try {
    const operator = await apiClient(stack, 'operator', 'bench');
    const tenant = await apiClient(stack, 'tenant', 'bench-boot');
    const { imageId } = await publishGuestImage(operator, (line) => console.error(line));
    const { networkId } = await tenant.createNetwork({ body: { name: 'boot', cidr: '10.202.0.0/24' } });
    // Here the emulated AWS shares the guests' two cores (on AWS it does not): how much it takes
    // idle, and the bare boot again beside it, show what of the difference is the machine's load.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    idleCpu = await machineBusyPercent(5_000);
    for (let i = 0; i < Math.min(3, count); i++) bareBesideStack.push(await bareBoot(i));
    console.error(
      `beside the idle control plane (${idleCpu.toFixed(0)} % of the machine busy): bare QEMU boot to ready ${bareBesideStack.map((ms) => ms.toFixed(0)).join(' ')} ms`,
    );
    const agent = stack.agents[0]!;
    const vmsDir = path.join(stateDir, 'agents', agent.hostId, 'vms', 'vms');
    for (let i = 0; i < count; i++) {
      const asked = performance.now();
      const vm = await operator.createVm({
        body: { name: `boot-${i}`, networkId, hostId: agent.hostId, tenantId: 'bench-boot', imageId, machineType },
      });
      const consoleFile = path.join(vmsDir, vm.vmId, 'console.log');
      let firstByte = 0;
      let metadata = 0;
      let published = 0;
      // The guest says on its console when its metadata server accepted each key (the agent answers
      // only once the control plane stored it); the API is asked only then: polling it all along
      // would load the two cores the guest boots on.
      const traced = new Set<string>();
      let acceptedOnConsole = 0;
      let askedApiAt = 0;
      await until(
        async () => {
          const now = performance.now() - asked;
          const output = existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8') : '';
          if (!firstByte && output.length > 0) firstByte = now;
          if (values.trace) traceLines(output, now, traced);
          if (!metadata && output.includes('stratoplane-guest: metadata: id=')) metadata = now;
          if (!acceptedOnConsole && (output.match(/published \S+ host key: HTTP\/1\.[01] 200/g) ?? []).length >= 2) acceptedOnConsole = now;
          if (acceptedOnConsole && !published && now - askedApiAt >= 250) {
            const firstAsk = askedApiAt === 0;
            askedApiAt = now;
            const { keys } = await tenant.getHostKeys({ params: { vmId: vm.vmId } }).catch(() => ({ keys: [] }));
            // Listed at once: published when the guest was told so; else when the API first lists them.
            if (keys.length >= 2) published = firstAsk ? acceptedOnConsole : now;
          }
          return firstByte > 0 && metadata > 0 && published > 0;
        },
        120_000,
        `vm ${vm.vmId} to boot, learn who it is and publish its host keys`,
      );
      const pid = Number(readFileSync(path.join(vmsDir, vm.vmId, PID_FILE), 'utf8'));
      const rssMb = residentMiB(pid);
      const said = (what: string) => (agentSaid.get(`${vm.vmId} ${what}`) ?? Number.NaN) - asked;
      const sample = { placed: said('placed'), booting: said('booting'), started: said('guest started'), console: firstByte, metadata, published, rssMb };
      samples.push(sample);
      console.error(
        `vm ${i + 1}/${count} ${vm.vmId}: agent heard ${sample.placed.toFixed(0)} ms, boot began ${sample.booting.toFixed(0)} ms, QEMU started ${sample.started.toFixed(0)} ms, first console ${firstByte.toFixed(0)} ms, metadata ${metadata.toFixed(0)} ms, host keys published ${published.toFixed(0)} ms; QEMU RSS ${rssMb.toFixed(0)} MiB`,
      );
      await tenant.deleteVm({ params: { vmId: vm.vmId } });
      await until(async () => !existsSync(path.join(vmsDir, vm.vmId)), 30_000, `vm ${vm.vmId} to be removed from its host`);
    }
  } finally {
    await stack.stop();
  }
} finally {
  await lab.destroy();
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(path.dirname(boot.kernel), { recursive: true, force: true });
}

const row = (name: string, values: number[]) => `${name.padEnd(26)} median ${median(values).toFixed(0).padStart(6)}  p99 ${p99(values).toFixed(0).padStart(6)}`;
console.log(`boot of ${count} VMs (${machineType}, ${accelerator.kind}), ms from POST /vms:`);
const phases: [string, keyof (typeof samples)[number]][] = [
  ['agent heard of the VM', 'placed'],
  ['boot began (spec fetched)', 'booting'],
  ['QEMU started', 'started'],
  ['first console byte', 'console'],
  ['metadata fetched', 'metadata'],
  ['host keys published', 'published'],
];
for (const [name, phase] of phases)
  console.log(
    row(
      name,
      samples.map((sample) => sample[phase]),
    ),
  );
console.log(row('bare QEMU to ready', bare));
console.log(row('same, beside idle stack', bareBesideStack));
console.log(`the idle local control plane (LocalStack, DynamoDB Local, functions runner, agent) kept ${idleCpu.toFixed(0)} % of this machine's CPU busy`);
const bootMedian = median(samples.map((sample) => sample.published));
const bareMedian = median(bare);
console.log(`limit: median <= 1.5 x bare = ${(1.5 * bareMedian).toFixed(0)} ms; measured ${(bootMedian / bareMedian).toFixed(2)} x bare`);
console.log(
  `boot_ms median=${bootMedian.toFixed(0)} p99=${p99(samples.map((sample) => sample.published)).toFixed(0)} bare_median=${bareMedian.toFixed(0)} rss_mb=${median(samples.map((sample) => sample.rssMb)).toFixed(0)}`,
);

/** Prints each complete console line not printed before, with the time it was first seen. */
function traceLines(output: string, now: number, printed: Set<string>): void {
  const lines = output.replaceAll('\r', '').split('\n').slice(0, -1);
  for (const [index, line] of lines.entries()) {
    const key = `${index} ${line}`;
    if (printed.has(key)) continue;
    printed.add(key);
    console.error(`  ${now.toFixed(0).padStart(6)} ms  ${line.slice(0, 140)}`);
  }
}

/** How busy the machine's CPUs are over `ms`, in percent of all of them (from /proc/stat). */
async function machineBusyPercent(ms: number): Promise<number> {
  const sample = () => {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = fields[3]! + (fields[4] ?? 0);
    return { idle, total: fields.reduce((sum, value) => sum + value, 0) };
  };
  const before = sample();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = sample();
  return 100 * (1 - (after.idle - before.idle) / (after.total - before.total));
}

/** QEMU alone: spawn to the guest's ready line on its serial console (read from a pipe, so nothing waits on a file). */
async function bareBoot(index: number): Promise<number> {
  const started = performance.now();
  const child: ChildProcess = spawn(
    'qemu-system-x86_64',
    [
      ...accelArgs(accelerator),
      '-machine',
      'q35',
      '-m',
      String(memoryMiB),
      '-smp',
      String(vcpus),
      '-display',
      'none',
      '-nodefaults',
      '-no-reboot',
      '-kernel',
      boot.kernel,
      '-initrd',
      boot.initrd,
      '-append',
      `${boot.cmdline} stratoplane.hostname=bare-${index}`,
      '-serial',
      'stdio',
      '-device',
      'virtio-rng-pci',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  bareQemus.add(child);
  try {
    return await new Promise<number>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`bare boot ${index}: no ready line within 60 s; console: ${output.slice(-500)}`)), 60_000);
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk;
        if (output.includes('stratoplane-guest: ready')) {
          clearTimeout(timer);
          resolve(performance.now() - started);
        }
      });
      child.once('exit', (code) => reject(new Error(`bare boot ${index}: QEMU exited with ${code}; console: ${output.slice(-500)}`)));
    });
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(undefined)));
    bareQemus.delete(child);
  }
}

function residentMiB(pid: number): number {
  const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (!rss) throw new Error(`no VmRSS for QEMU pid ${pid}`);
  return Number(rss) / 1024;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}

function median(values: number[]): number {
  return quantile(values, 0.5);
}

function p99(values: number[]): number {
  return quantile(values, 0.99);
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}
