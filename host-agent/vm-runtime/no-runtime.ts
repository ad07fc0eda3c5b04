import { EventEmitter } from 'node:events';
import type { VmLaunch, VmReport, VmRuntime } from './vm-runtime.ts';

/**
 * The runtime of a host that runs no VMs (`--runtime none`, or a QEMU that cannot run here with
 * `--runtime-fallback none`). The host registers `vmRuntime: none`, so placement puts no VM here;
 * a VM that is here all the same (placed before its agent restarted this way) is reported `failed`
 * with the reason, rather than left showing what it was.
 */
export class NoRuntime extends EventEmitter<{ state: [VmReport] }> implements VmRuntime {
  readonly kind = 'none';
  readonly needsGuest = false;
  private readonly vms = new Map<string, VmReport>();

  /** `why`: how the agent came to run no VMs, said in each VM's reason. */
  constructor(private readonly why = 'its agent was started with --runtime none') {
    super();
  }

  describe(): string {
    return `none (this host runs no VMs: ${this.why})`;
  }

  async start(launch: VmLaunch): Promise<VmReport> {
    const report: VmReport = {
      vmId: launch.vmId,
      state: 'failed',
      reason: `this host runs no VMs (${this.why}); migrate the VM to a host that does`,
    };
    this.vms.set(launch.vmId, report);
    this.emit('state', report);
    return report;
  }

  /** Nothing runs, so nothing stops. */
  async stop(): Promise<void> {}

  report(vmId: string): VmReport | undefined {
    return this.vms.get(vmId);
  }

  consoleTail(): string {
    return '';
  }

  forget(vmId: string): void {
    this.vms.delete(vmId);
  }

  async stopAll(): Promise<void> {}
}
