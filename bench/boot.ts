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
const { values } = parseArgs({ args: process.argv.slice(3), options: { vms: { type: 'string', default: '10' } } });
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
const samples: { console: number; metadata: number; published: number; rssMb: number }[] = [];
try {
  const [host] = await lab.addHosts(1);
  console.error('starting the local control plane with one agent running QEMU guests in its host namespace...');
  const stack = await startLocalStack({
    agentCount: 1,
    hostPrefix: `boot${process.pid}`,
    agentHosts: [{ address: host!.underlay, netns: host!.netns }],
    agentEnv: { HOST_AGENT_RUNTIME: 'qemu' },
    stateDir,
    log: (line) => /^\[local-aws\]|qemu|failed|error/i.test(line) && console.error(line),
  });
  try {
    const operator = await apiClient(stack, 'operator', 'bench');
    const tenant = await apiClient(stack, 'tenant', 'bench-boot');
    const { imageId } = await publishGuestImage(operator, (line) => console.error(line));
    const { networkId } = await tenant.createNetwork({ body: { name: 'boot', cidr: '10.202.0.0/24' } });
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
      await until(
        async () => {
          const now = performance.now() - asked;
          const output = existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8') : '';
          if (!firstByte && output.length > 0) firstByte = now;
          if (!metadata && output.includes('stratoplane-guest: metadata: id=')) metadata = now;
          if (!published && (await tenant.getHostKeys({ params: { vmId: vm.vmId } }).catch(() => ({ keys: [] }))).keys.length >= 2) published = now;
          return firstByte > 0 && metadata > 0 && published > 0;
        },
        120_000,
        `vm ${vm.vmId} to boot, learn who it is and publish its host keys`,
      );
      const pid = Number(readFileSync(path.join(vmsDir, vm.vmId, PID_FILE), 'utf8'));
      const rssMb = residentMiB(pid);
      samples.push({ console: firstByte, metadata, published, rssMb });
      console.error(
        `vm ${i + 1}/${count} ${vm.vmId}: first console ${firstByte.toFixed(0)} ms, metadata ${metadata.toFixed(0)} ms, host keys published ${published.toFixed(0)} ms; QEMU RSS ${rssMb.toFixed(0)} MiB`,
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
console.log(
  row(
    'first console byte',
    samples.map((sample) => sample.console),
  ),
);
console.log(
  row(
    'metadata fetched',
    samples.map((sample) => sample.metadata),
  ),
);
console.log(
  row(
    'host keys published',
    samples.map((sample) => sample.published),
  ),
);
console.log(row('bare QEMU to ready', bare));
const bootMedian = median(samples.map((sample) => sample.published));
const bareMedian = median(bare);
console.log(`limit: median <= 1.5 x bare = ${(1.5 * bareMedian).toFixed(0)} ms; measured ${(bootMedian / bareMedian).toFixed(2)} x bare`);
console.log(
  `boot_ms median=${bootMedian.toFixed(0)} p99=${p99(samples.map((sample) => sample.published)).toFixed(0)} bare_median=${bareMedian.toFixed(0)} rss_mb=${median(samples.map((sample) => sample.rssMb)).toFixed(0)}`,
);

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
