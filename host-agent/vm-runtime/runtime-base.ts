import { EventEmitter } from 'node:events';
import { closeSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import type { VmReport, VmRunState } from './vm-runtime.ts';

/** Why a VM stopped when the agent stopped it without saying why. */
export const STOPPED_BY_AGENT = 'stopped by the host agent';

/** What every runtime keeps of a VM: its state, why, and its folder (console.log, pid file, …). */
export interface RuntimeVm {
  vmId: string;
  state: VmRunState;
  reason?: string;
  dir: string;
}

/** The bookkeeping QemuRuntime and ProcessRuntime share: states and their events, reports, the console's tail, forgetting. */
export abstract class RuntimeBase<Vm extends RuntimeVm> extends EventEmitter<{ state: [VmReport] }> {
  protected readonly vms = new Map<string, Vm>();

  abstract stop(vmId: string, graceMs?: number, reason?: string): Promise<void>;

  /** Moves a VM to `state` and tells it; a failed VM that then exits stays failed. */
  protected transition(vm: Vm, state: VmRunState, reason?: string): void {
    if (vm.state === state || (vm.state === 'failed' && state === 'stopped')) return;
    vm.state = state;
    vm.reason = reason;
    this.emit('state', this.report(vm.vmId)!);
  }

  report(vmId: string): VmReport | undefined {
    const vm = this.vms.get(vmId);
    return vm && { vmId, state: vm.state, ...(vm.reason ? { reason: vm.reason } : {}) };
  }

  /** The last `maxBytes` of the VM's serial console (as EC2's GetConsoleOutput); only that much is read. */
  consoleTail(vmId: string, maxBytes = 64 * 1024): string {
    const vm = this.vms.get(vmId);
    if (!vm) return '';
    const file = path.join(vm.dir, 'console.log');
    let fd: number | undefined;
    try {
      const size = statSync(file).size;
      const length = Math.min(size, maxBytes);
      const buffer = Buffer.alloc(length);
      fd = openSync(file, 'r');
      readSync(fd, buffer, 0, length, size - length);
      return buffer.toString('utf8');
    } catch {
      return '';
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }

  /** Drops a stopped or failed VM and its files. */
  forget(vmId: string): void {
    const vm = this.vms.get(vmId);
    if (!vm || !['stopped', 'failed'].includes(vm.state)) return;
    this.vms.delete(vmId);
    rmSync(vm.dir, { recursive: true, force: true });
  }

  /** Stops every VM (the agent is shutting down). */
  async stopAll(graceMs = 2_000, reason?: string): Promise<void> {
    await Promise.all([...this.vms.keys()].map((vmId) => this.stop(vmId, graceMs, reason)));
  }
}
