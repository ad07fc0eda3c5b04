import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CONSOLE_OUTPUT_MAX_CHARS, type ReportVmStateRequest } from '#events/vm-lifecycle.ts';
import type { LaunchDisk, VmLaunchSpec } from '#events/vm-config.ts';
import { VM_GATEWAY } from './data-plane/plan-commands.ts';
import { vmInterfaceName } from './data-plane/desired-state.ts';
import type { LocalVm } from './forwarding-table.ts';
import type { ImageCache } from './image-cache.ts';
import { unpackImageBundle } from './vm-runtime/image-bundle.ts';
import { type DiskAttachment, deleteDiskFiles, ensureDiskFile, poolDirOf } from './vm-runtime/vm-disks.ts';
import type { GuestBoot, GuestDiskView, VmLaunch, VmReport, VmRuntime } from './vm-runtime/vm-runtime.ts';
import { macOfVm, plugTap, unplugTap } from './vm-runtime/vm-taps.ts';

export interface VmLifecycleOptions {
  runtime: VmRuntime;
  /** The host's namespace, where VMs' taps go; without one a guest gets no NIC. */
  netns?: string;
  /** Images the host boots, one copy each (needed by runtimes that boot guests). */
  images?: ImageCache;
  /** Where unpacked images (kernel, initramfs) are kept, one folder per image. */
  bootDir: string;
  /** The host's storage pool folders, one per pool: a disk is the file `<poolsDir>/<poolId>/<diskId>.raw`. */
  poolsDir: string;
  report: (vmId: string, report: ReportVmStateRequest) => void;
  log: (message: string) => void;
  /** How often a running VM's console is sent again when it changed (ms). */
  consoleRefreshMs?: number;
  /** The first wait before a failed disk change is tried again (ms); it doubles up to a minute. */
  diskRetryMs?: number;
}

/** Why the agent stops a VM, said in its `stopping` and `stopped` reports. */
export const STOP_REASONS = {
  owner: 'stopped by its owner',
  reboot: 'rebooted by its owner',
  left: 'stopped: the VM left this host (deleted or moved)',
  shutdown: 'stopped: its host agent shut down (guests do not outlive the agent that runs them)',
} as const;

interface Wanted {
  vm: LocalVm;
  launch: VmLaunchSpec | undefined;
}

/**
 * Makes the host's VMs what the control plane asks: a VM placed here with a launch spec is booted
 * (its image fetched and checked, its tap made), stopped when the tenant stops it, booted again
 * for a start or reboot (a higher boot generation), and stopped and removed when it leaves the
 * host. Its disks are plugged in at boot, hot-plugged when attached, unplugged when detached, and
 * their limits and size changed live; a disk change that fails is said in the VM's reports
 * (`stateReason`) until it succeeds. Each VM's changes run one at a time, in order. Everything the
 * runtime sees is reported to the control plane with the console's tail.
 */
export class VmLifecycle {
  private wanted = new Map<string, Wanted>();
  /** The boot generation each VM's current guest was started for. */
  private readonly booted = new Map<string, number>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly boots = new Map<string, Promise<GuestBoot>>();
  private readonly consoleSent = new Map<string, string>();
  /** The disks in each VM's guest now, as last set (with a runtime without guests: the files kept for it). */
  private readonly plugged = new Map<string, Map<string, LaunchDisk>>();
  /** What went wrong with each VM's disks, in words, while it is so (empty: nothing). */
  private readonly diskProblems = new Map<string, string>();
  /** Disks deleted while a guest here still had them (the deletion outran the detach): their files go once unplugged, by pool id. */
  private readonly deletedWhilePlugged = new Map<string, string>();
  /** VMs whose disk change failed: when it is tried again, and how many times it was. */
  private readonly diskRetries = new Map<string, { attempts: number; timer: NodeJS.Timeout }>();
  private readonly consoleTimer: NodeJS.Timeout;
  private closed = false;
  private lastObservedAt = 0;

  constructor(private readonly options: VmLifecycleOptions) {
    options.runtime.on('state', (report) => this.tell(report));
    this.consoleTimer = setInterval(() => this.refreshConsoles(), options.consoleRefreshMs ?? 15_000);
    this.consoleTimer.unref();
  }

  /** The VMs placed on this host and their launch specs (undefined: not ready to launch, or not known yet). */
  update(local: readonly LocalVm[], launches: ReadonlyMap<string, VmLaunchSpec | undefined>): void {
    if (this.closed) return;
    const before = this.wanted;
    this.wanted = new Map(local.map((vm) => [vm.vmId, { vm, launch: launches.get(vm.vmId) }]));
    for (const vmId of new Set([...before.keys(), ...this.wanted.keys()])) this.enqueue(vmId);
  }

  /** Resolves once every change asked so far was made. */
  async settled(): Promise<void> {
    while (this.queues.size > 0) await Promise.all(this.queues.values());
  }

  /** Stops every VM (the agent is shutting down): their guests do not outlive the agent that runs them. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.consoleTimer);
    for (const vmId of this.diskRetries.keys()) this.retryDisksLater(vmId, false);
    await this.settled();
    await this.options.runtime.stopAll(undefined, STOP_REASONS.shutdown);
  }

  private enqueue(vmId: string): void {
    const previous = this.queues.get(vmId) ?? Promise.resolve();
    const next = previous
      .then(() => this.reconcile(vmId))
      .catch((error: Error) => this.options.log(`vm ${vmId}: ${error.message}`))
      .finally(() => {
        if (this.queues.get(vmId) === next) this.queues.delete(vmId);
      });
    this.queues.set(vmId, next);
  }

  private async reconcile(vmId: string): Promise<void> {
    const { runtime } = this.options;
    const wanted = this.wanted.get(vmId);
    const seen = runtime.report(vmId);
    const alive = seen !== undefined && ['starting', 'running', 'stopping'].includes(seen.state);
    if (!wanted) {
      // Left this host (deleted, or moved): its guest goes, and its tap and files with it.
      if (alive) await runtime.stop(vmId, undefined, STOP_REASONS.left);
      runtime.forget(vmId);
      this.booted.delete(vmId);
      this.consoleSent.delete(vmId);
      // Its disks' files stay in their pools: a disk outlives the VMs it was attached to.
      this.plugged.delete(vmId);
      this.diskProblems.delete(vmId);
      this.retryDisksLater(vmId, false);
      this.removeDeletedFiles();
      if (runtime.needsGuest) await unplugTap(this.options.netns, vmInterfaceName(vmId));
      return;
    }
    const { launch } = wanted;
    if (!launch) return;
    if (launch.powerState === 'stopped') {
      if (alive) await runtime.stop(vmId, undefined, STOP_REASONS.owner);
      // Stopped before it ever ran here: say so, or the API would show it provisioning forever.
      else if (!seen) this.send(vmId, { state: 'stopped', reason: STOP_REASONS.owner });
      this.plugged.delete(vmId);
      this.diskProblems.delete(vmId);
      this.retryDisksLater(vmId, false);
      this.removeDeletedFiles();
      return;
    }
    const bootedFor = this.booted.get(vmId);
    if (alive && bootedFor !== undefined && bootedFor >= launch.bootGeneration) return this.syncDisks(vmId, launch.disks ?? []);
    // A failed guest stays failed until its owner starts or reboots it (a higher generation).
    if (seen?.state === 'failed' && bootedFor !== undefined && bootedFor >= launch.bootGeneration) return;
    // Alive and wanted with a higher boot generation: a reboot.
    if (alive) await runtime.stop(vmId, undefined, STOP_REASONS.reboot);
    await this.boot(wanted.vm, launch);
  }

  /**
   * Readies this host for a guest that comes from another host while it runs: its image unpacked,
   * its tap made and its disks' files made empty (they are copied from the source with the guest;
   * a copy left from an earlier stay here is stale), as for a boot. From then on the guest counts
   * as booted here for its boot generation, so once the VM is this host's it is adopted as it
   * runs, not booted again.
   */
  async prepareArrival(vm: LocalVm, launch: VmLaunchSpec): Promise<VmLaunch> {
    if (!this.options.netns) throw new Error('a guest moves live only between hosts with a host namespace (--netns)');
    const boot = await this.bootOf(launch);
    const nic = { tap: vmInterfaceName(vm.vmId), mac: macOfVm(vm.vmId) };
    await plugTap(this.options.netns, nic.tap);
    const disks: DiskAttachment[] = [];
    for (const disk of launch.disks ?? []) {
      deleteDiskFiles(poolDirOf(this.options.poolsDir, disk.poolId), disk.diskId);
      disks.push(await this.diskFile(disk));
    }
    this.booted.set(vm.vmId, launch.bootGeneration);
    this.plugged.set(vm.vmId, new Map((launch.disks ?? []).map((disk) => [disk.diskId, disk])));
    return this.guestLaunch(vm, launch, boot, nic, disks);
  }

  /** A guest that did not arrive after all: nothing of it stays (unless the VM became this host's meanwhile), its disks' copies neither. */
  async forgetArrival(vmId: string, disks: readonly LaunchDisk[]): Promise<void> {
    if (this.wanted.has(vmId)) return;
    this.booted.delete(vmId);
    this.plugged.delete(vmId);
    this.deleteDiskCopies(vmId, disks);
    if (this.options.netns) await unplugTap(this.options.netns, vmInterfaceName(vmId));
  }

  /** A guest that moved away for good: its disks' files here are stale copies now (their data lives at its new host). */
  forgetDeparted(vmId: string, disks: readonly LaunchDisk[]): void {
    if (this.wanted.has(vmId)) return;
    this.deleteDiskCopies(vmId, disks);
  }

  private deleteDiskCopies(vmId: string, disks: readonly LaunchDisk[]): void {
    for (const disk of disks) {
      try {
        if (deleteDiskFiles(poolDirOf(this.options.poolsDir, disk.poolId), disk.diskId))
          this.options.log(`vm ${vmId}: this host's copy of disk ${disk.diskId} removed`);
      } catch (error) {
        this.options.log(`vm ${vmId}: this host's copy of disk ${disk.diskId} not removed: ${(error as Error).message}`);
      }
    }
  }

  private guestLaunch(vm: LocalVm, launch: VmLaunchSpec, boot: GuestBoot | undefined, nic: VmLaunch['nic'], disks: DiskAttachment[]): VmLaunch {
    return {
      vmId: vm.vmId,
      memoryMiB: launch.memoryMiB,
      vcpus: launch.vcpus,
      boot,
      settings: { ip: `${vm.ip}/32`, gateway: VM_GATEWAY, hostname: launch.hostname },
      nic,
      ...(this.options.runtime.disks && disks.length > 0 ? { disks } : {}),
    };
  }

  private async boot(vm: LocalVm, launch: VmLaunchSpec): Promise<void> {
    const { runtime } = this.options;
    this.booted.set(vm.vmId, launch.bootGeneration);
    this.options.log(`vm ${vm.vmId}: booting (boot generation ${launch.bootGeneration})`);
    runtime.forget(vm.vmId);
    this.consoleSent.delete(vm.vmId);
    // Its disks' files (made, or grown while it was stopped), plugged in before the guest runs.
    const disks: DiskAttachment[] = [];
    const problems = new Map<string, string>();
    for (const disk of launch.disks ?? []) {
      try {
        disks.push(await this.diskFile(disk));
      } catch (error) {
        problems.set(disk.diskId, `not attached: ${(error as Error).message}`);
      }
    }
    this.plugged.delete(vm.vmId);
    this.removeDeletedFiles();
    this.setDiskProblems(vm.vmId, problems, false);
    let boot: GuestBoot | undefined;
    let nic: { tap: string; mac: string } | undefined;
    if (runtime.needsGuest) {
      this.send(vm.vmId, { state: 'starting', reason: launch.image ? `fetching image ${launch.image.imageId}` : undefined });
      try {
        boot = await this.bootOf(launch);
      } catch (error) {
        return this.send(vm.vmId, { state: 'failed', reason: (error as Error).message });
      }
      if (this.options.netns) {
        nic = { tap: vmInterfaceName(vm.vmId), mac: macOfVm(vm.vmId) };
        await plugTap(this.options.netns, nic.tap);
      }
    }
    // In the guest from its start (QEMU plugs them in before the guest runs).
    this.plugged.set(vm.vmId, new Map((launch.disks ?? []).filter((disk) => !problems.has(disk.diskId)).map((disk) => [disk.diskId, disk])));
    try {
      await runtime.start(this.guestLaunch(vm, launch, boot, nic, disks));
      this.options.log(`vm ${vm.vmId}: guest started (${runtime.kind})`);
    } catch (error) {
      this.plugged.delete(vm.vmId);
      this.send(vm.vmId, { state: 'failed', reason: (error as Error).message });
    }
  }

  /** The disk's file in its pool's folder on this host, made or grown to the disk's size. */
  private async diskFile(disk: LaunchDisk): Promise<DiskAttachment> {
    const file = await ensureDiskFile(poolDirOf(this.options.poolsDir, disk.poolId), disk.diskId, disk.sizeGiB, 'raw');
    return {
      diskId: disk.diskId,
      file,
      format: 'raw',
      iops: disk.iops,
      throughputMiBps: disk.throughputMiBps,
      ...(disk.slot !== undefined ? { slot: disk.slot } : {}),
    };
  }

  /**
   * Makes a running VM's disks what its launch spec says: detached ones unplugged, attached ones
   * hot-plugged, changed limits set and grown sizes applied live. What fails is reported and tried
   * again at the next change the agent hears of, or on its own a little later (retryDisksLater).
   */
  private async syncDisks(vmId: string, wanted: readonly LaunchDisk[]): Promise<void> {
    const guest = this.options.runtime.disks;
    const plugged = this.plugged.get(vmId) ?? new Map<string, LaunchDisk>();
    this.plugged.set(vmId, plugged);
    const want = new Map(wanted.map((disk) => [disk.diskId, disk]));
    const problems = new Map<string, string>();
    for (const diskId of [...plugged.keys()]) {
      if (want.has(diskId)) continue;
      try {
        await guest?.detach(vmId, diskId);
        plugged.delete(diskId);
        this.options.log(`vm ${vmId}: disk ${diskId} detached`);
        this.removeDeletedFiles();
      } catch (error) {
        problems.set(diskId, `still attached: ${(error as Error).message}`);
      }
    }
    for (const disk of want.values()) {
      const now = plugged.get(disk.diskId);
      try {
        if (!now) {
          const attachment = await this.diskFile(disk);
          await guest?.attach(vmId, attachment);
          this.options.log(`vm ${vmId}: disk ${disk.diskId} attached (${disk.iops} IOPS, ${disk.throughputMiBps} MiB/s)`);
        } else {
          if (disk.sizeGiB > now.sizeGiB) await (guest ? guest.grow(vmId, disk.diskId, disk.sizeGiB) : this.diskFile(disk));
          if (guest && (disk.iops !== now.iops || disk.throughputMiBps !== now.throughputMiBps)) {
            await guest.setLimits(vmId, disk.diskId, disk.iops, disk.throughputMiBps);
          }
        }
        plugged.set(disk.diskId, disk);
      } catch (error) {
        problems.set(disk.diskId, `${now ? 'not changed' : 'not attached'}: ${(error as Error).message}`);
      }
    }
    this.setDiskProblems(vmId, problems, true);
    this.retryDisksLater(vmId, problems.size > 0);
  }

  /**
   * A disk change that failed is tried again on its own (QEMU busy, a file system full for a
   * moment), not only at the next change the agent hears of: after 1 s, then twice as long each
   * time up to a minute, until it is done or the VM stops or leaves.
   */
  private retryDisksLater(vmId: string, failed: boolean): void {
    const before = this.diskRetries.get(vmId);
    clearTimeout(before?.timer);
    if (!failed || this.closed) {
      this.diskRetries.delete(vmId);
      return;
    }
    const attempts = (before?.attempts ?? 0) + 1;
    const timer = setTimeout(() => this.enqueue(vmId), Math.min(60_000, (this.options.diskRetryMs ?? 1_000) * 2 ** (attempts - 1)));
    timer.unref();
    this.diskRetries.set(vmId, { attempts, timer });
  }

  /** Records what is wrong with a VM's disks; a change goes to the control plane with the VM's state. */
  private setDiskProblems(vmId: string, problems: ReadonlyMap<string, string>, report: boolean): void {
    const text = [...problems].map(([diskId, problem]) => `disk ${diskId} ${problem}`).join('; ');
    if (text === (this.diskProblems.get(vmId) ?? '')) return;
    if (text) {
      this.diskProblems.set(vmId, text);
      this.options.log(`vm ${vmId}: ${text}`);
    } else this.diskProblems.delete(vmId);
    const seen = this.options.runtime.report(vmId);
    if (report && seen) this.send(vmId, seen);
  }

  /**
   * A disk was deleted: its file goes from its pool's folder. The message can outrun the detach
   * that came before it (the VM's new configuration is fetched, the message is pushed): a guest
   * here that still has the disk lets go of it first, then the file goes.
   */
  deleteDisk(poolId: string, diskId: string): void {
    for (const [vmId, plugged] of this.plugged) {
      if (plugged.has(diskId)) {
        this.options.log(`disk ${diskId} was deleted while vm ${vmId} still has it: its file goes once it is unplugged`);
        this.deletedWhilePlugged.set(diskId, poolId);
        return;
      }
    }
    this.deletedWhilePlugged.delete(diskId);
    try {
      const removed = deleteDiskFiles(poolDirOf(this.options.poolsDir, poolId), diskId);
      this.options.log(`disk ${diskId} deleted: ${removed ? 'its file is removed' : 'it had no file on this host'}`);
    } catch (error) {
      this.options.log(`disk ${diskId} deleted, its file not removed: ${(error as Error).message}`);
    }
  }

  /** Removes the files of deleted disks that no guest here has any more. */
  private removeDeletedFiles(): void {
    for (const [diskId, poolId] of this.deletedWhilePlugged) {
      if (![...this.plugged.values()].some((plugged) => plugged.has(diskId))) this.deleteDisk(poolId, diskId);
    }
  }

  /** Each VM's disks as the agent set them, with what is wrong; `inGuest` false: the runtime has no guest (files only). */
  diskStatus(vmId: string) {
    return {
      inGuest: this.options.runtime.disks !== undefined,
      disks: [...(this.plugged.get(vmId)?.values() ?? [])],
      ...(this.diskProblems.has(vmId) ? { problems: this.diskProblems.get(vmId) } : {}),
    };
  }

  /** What the hypervisor enforces on a running VM's disks now (QEMU's `query-block`); undefined without a guest. */
  inspectDisks(vmId: string): Promise<GuestDiskView[]> | undefined {
    return this.options.runtime.disks?.inspect(vmId);
  }

  /** The image's kernel and initramfs, fetched once per host and unpacked once per image. */
  private bootOf(launch: VmLaunchSpec): Promise<GuestBoot> {
    const { image } = launch;
    if (!image) return Promise.reject(new Error('the VM has no image: a guest needs one to boot (create it with imageId)'));
    if (!this.options.images) return Promise.reject(new Error('this host has no image cache'));
    let boot = this.boots.get(image.sha256);
    if (!boot) {
      boot = this.options.images.get(image).then((file) => {
        const dir = path.join(this.options.bootDir, image.sha256);
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        return unpackImageBundle(readFileSync(file), dir).boot;
      });
      boot.catch(() => this.boots.delete(image.sha256));
      this.boots.set(image.sha256, boot);
    }
    return boot.catch((error: Error) => {
      throw new Error(`image ${image.imageId}: ${error.message}`);
    });
  }

  private tell(report: VmReport): void {
    this.send(report.vmId, { state: report.state, reason: report.reason });
  }

  private send(vmId: string, report: Omit<ReportVmStateRequest, 'observedAt' | 'console'>): void {
    const output = this.options.runtime.consoleTail(vmId, CONSOLE_OUTPUT_MAX_CHARS).slice(-CONSOLE_OUTPUT_MAX_CHARS);
    const changed = output !== (this.consoleSent.get(vmId) ?? '');
    if (changed) this.consoleSent.set(vmId, output);
    // A running guest whose disks are not as asked says so (the API shows it as the VM's stateReason).
    const disks = ['starting', 'running'].includes(report.state) ? this.diskProblems.get(vmId) : undefined;
    const reason = report.reason ?? disks;
    this.options.report(vmId, {
      state: report.state,
      ...(reason ? { reason: reason.slice(0, 4096) } : {}),
      observedAt: this.nextObservedAt(),
      ...(changed ? { console: output } : {}),
      // What runs it: the API shows it, so a placeholder process never passes for a guest.
      runtime: this.options.runtime.kind,
    });
  }

  /**
   * The control plane keeps a report only if it is strictly newer than the last it holds: two
   * reports in the same millisecond (a quick stop then boot) must not share a time.
   */
  private nextObservedAt(): number {
    this.lastObservedAt = Math.max(Date.now(), this.lastObservedAt + 1);
    return this.lastObservedAt;
  }

  /** A running guest keeps writing to its console: what changed goes with a report of the same state. */
  private refreshConsoles(): void {
    for (const vmId of this.wanted.keys()) {
      const seen = this.options.runtime.report(vmId);
      if (!seen || this.queues.has(vmId)) continue;
      const output = this.options.runtime.consoleTail(vmId, CONSOLE_OUTPUT_MAX_CHARS).slice(-CONSOLE_OUTPUT_MAX_CHARS);
      if (output !== (this.consoleSent.get(vmId) ?? '')) this.send(vmId, seen);
    }
  }
}
