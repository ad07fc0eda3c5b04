import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PID_FILE, reclaimLeftovers } from './leftovers.ts';
import { RuntimeBase, type RuntimeVm, STOPPED_BY_AGENT } from './runtime-base.ts';
import type { VmLaunch, VmReport, VmRuntime } from './vm-runtime.ts';

interface Vm extends RuntimeVm {
  reason?: string;
  process: ChildProcess;
  dir: string;
  exited: Promise<void>;
}

const VM_ID = /^vm-[0-9a-f]{12}$/;

/**
 * One small process per VM (a shell that prints a console line and sleeps), no guest: for load
 * benches that run hundreds of VMs and for machines without QEMU. The VM's life is the process's:
 * `running` once it runs, `stopped` when the agent stops it, `failed` if it dies otherwise. The
 * guest-facing services (metadata server, proxy, bridges) are the host agent's and work the same.
 */
export class ProcessRuntime extends RuntimeBase<Vm> implements VmRuntime {
  readonly kind = 'process';
  readonly needsGuest = false;

  constructor(private readonly options: { stateDir: string }) {
    super();
    this.reclaimed = reclaimLeftovers(options.stateDir, (cmdline, vmId) => cmdline.includes(`stratoplane-vm ${vmId}`));
  }

  /** VMs whose process an earlier agent left running, killed at construction. */
  readonly reclaimed: string[];

  describe(): string {
    return 'process (no guests: one placeholder process per VM)';
  }

  async start(launch: VmLaunch): Promise<VmReport> {
    if (!VM_ID.test(launch.vmId)) throw new Error(`not a VM id: ${JSON.stringify(launch.vmId)}`);
    const current = this.vms.get(launch.vmId);
    if (current && !['stopped', 'failed'].includes(current.state)) throw new Error(`vm ${launch.vmId} is already ${current.state}`);
    const dir = path.join(this.options.stateDir, launch.vmId);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const consoleFd = openSync(path.join(dir, 'console.log'), 'a');
    // `sh -c SCRIPT stratoplane-vm <vmId> …`: the VM's id stays in the shell's command line, for reclaimLeftovers.
    const script = 'echo "stratoplane-guest: ready (process runtime: no guest) boot=$$ memory=$2MiB vcpus=$3"; while :; do sleep 3600; done';
    const child = spawn('/bin/sh', ['-c', script, 'stratoplane-vm', launch.vmId, String(launch.memoryMiB), String(launch.vcpus)], {
      stdio: ['ignore', consoleFd, consoleFd],
      // Its own process group: a stop ends the shell and its sleep together.
      detached: true,
    });
    closeSync(consoleFd);
    if (child.pid) writeFileSync(path.join(dir, PID_FILE), String(child.pid));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const vm: Vm = { vmId: launch.vmId, state: 'starting', process: child, dir, exited };
    this.vms.set(launch.vmId, vm);
    this.emit('state', this.report(launch.vmId)!);
    child.once('exit', (code, signal) => {
      // Stopped for the reason its stop gave (its owner's, a reboot's, the agent's shutdown).
      if (vm.state === 'stopping') this.transition(vm, 'stopped', vm.reason ?? STOPPED_BY_AGENT);
      else this.transition(vm, 'failed', `the VM's process ${signal ? `was killed by ${signal}` : `exited with ${code}`}`);
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    }).catch((error: Error) => this.transition(vm, 'failed', `the VM's process could not start: ${error.message}`));
    // Running once it has said so on its console, as a guest would (so the first report carries it).
    for (let waited = 0; vm.state === 'starting' && waited < 5_000; waited += 10) {
      if (this.consoleTail(launch.vmId).includes('stratoplane-guest: ready')) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    if (vm.state === 'starting') this.transition(vm, 'running');
    return this.report(launch.vmId)!;
  }

  async stop(vmId: string, graceMs = 5_000, reason = STOPPED_BY_AGENT): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.state === 'stopped' || vm.state === 'failed') return;
    this.transition(vm, 'stopping', reason);
    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-vm.process.pid!, signal);
      } catch {
        // Gone already.
      }
    };
    signalGroup('SIGTERM');
    const timer = setTimeout(() => signalGroup('SIGKILL'), graceMs);
    await vm.exited;
    clearTimeout(timer);
  }
}
