import type { EventEmitter } from 'node:events';
import type { VmRuntimeKind } from '#events/vm-lifecycle.ts';
import type { Accelerator } from './accelerator.ts';
import type { MigrationAddress, MigrationFigures } from './live-migration.ts';
import type { DiskAttachment } from './vm-disks.ts';

/** What a VM is doing, as the runtime sees it. */
export type VmRunState = 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface VmReport {
  vmId: string;
  state: VmRunState;
  /** Why it failed or stopped, in words (a failure carries the console's last lines). */
  reason?: string;
}

export interface GuestBoot {
  kernel: string;
  initrd: string;
  /** The image's own command line; the VM's settings are appended to it. */
  cmdline: string;
}

export interface VmLaunch {
  vmId: string;
  memoryMiB: number;
  vcpus: number;
  /** What to boot: required by runtimes that boot a guest (QEMU). */
  boot?: GuestBoot;
  /** Passed to the guest as `stratoplane.<name>=<value>` on the kernel command line. */
  settings: Record<string, string>;
  /** The VM's NIC: a tap device the agent made, and the VM's MAC. */
  nic?: { tap: string; mac: string };
  /** Disks attached before the guest starts. */
  disks?: DiskAttachment[];
}

/**
 * Where a host's VMs run. QemuRuntime (real guests), ProcessRuntime (one small process per VM, for
 * load benches and machines without QEMU) and NoRuntime (runs none: says so of every VM placed
 * here). Each tells every state change as a `state` event.
 */
export interface VmRuntime extends EventEmitter<{ state: [VmReport] }> {
  /** What the host registers, and each report of a VM says, runs its VMs. */
  readonly kind: VmRuntimeKind;
  /** QEMU's: KVM or TCG, and why. */
  readonly accelerator?: Accelerator;
  /** What it runs guests with, said at the agent's start (e.g. `qemu (tcg: …)`). */
  describe(): string;
  /** Does it need a NIC (a tap in the host's namespace) and an image to boot? */
  readonly needsGuest: boolean;
  start(launch: VmLaunch): Promise<VmReport>;
  /**
   * Stops the VM: the guest is asked first, then made to. Resolves once it is stopped. `reason`
   * goes with its `stopping` and `stopped` reports (default: stopped by the host agent).
   */
  stop(vmId: string, graceMs?: number, reason?: string): Promise<void>;
  report(vmId: string): VmReport | undefined;
  /** The last `maxBytes` of the VM's serial console (as EC2's GetConsoleOutput). */
  consoleTail(vmId: string, maxBytes?: number): string;
  /** Drops a stopped or failed VM and its files. */
  forget(vmId: string): void;
  stopAll(graceMs?: number, reason?: string): Promise<void>;
  /** Runtimes with a guest to plug disks into (QEMU) have these; without them a disk is only its file. */
  readonly disks?: GuestDisks;
  /** Runtimes whose guests move between hosts while they run (QEMU) have these. */
  readonly migration?: GuestMigration;
}

/** A guest's move between hosts while it runs (live migration), from either end. */
export interface GuestMigration {
  /**
   * Destination: starts the VM waiting for its guest at `listen`; resolves once it listens, with a
   * promise that resolves when the guest runs here and rejects if it never does.
   */
  receive(launch: VmLaunch, listen: MigrationAddress): Promise<{ resumed: Promise<void> }>;
  /**
   * Source: sends the running guest to `to`; `onStop` runs when the guest pauses for the last copy.
   * Resolves once it runs there; rejects (the guest runs on here) if it failed or took over `boundMs`.
   */
  send(vmId: string, to: MigrationAddress, options: { boundMs: number; onStop: () => void }): Promise<MigrationFigures>;
  /** Source: runs a guest it sent away again, once its migration was aborted after the transfer (it runs nowhere else). */
  resumeHere(vmId: string): Promise<void>;
}

/** A running guest's disks, changed live. */
export interface GuestDisks {
  /** Hot-plugs a disk (its file already made). */
  attach(vmId: string, disk: DiskAttachment): Promise<void>;
  /** Hot-unplugs a disk; rejects if the guest does not let go of it. */
  detach(vmId: string, diskId: string): Promise<void>;
  /** Changes a disk's limits while the guest uses it. */
  setLimits(vmId: string, diskId: string, iops: number, throughputMiBps: number): Promise<void>;
  /** Grows a disk while the guest runs. */
  grow(vmId: string, diskId: string, sizeGiB: number): Promise<void>;
  /** What the hypervisor enforces on each disk plugged in now. */
  inspect(vmId: string): Promise<GuestDiskView[]>;
}

/** A disk as the hypervisor has it. */
export interface GuestDiskView {
  diskId: string;
  iops: number;
  throughputMiBps: number;
  sizeBytes: number;
}
