import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { type Accelerator, accelArgs, chooseAccelerator } from './accelerator.ts';
import { QmpClient } from './qmp-client.ts';
import { attachDisk, DISK_SLOTS, type DiskAttachment, detachDisk, diskBusArgs, growDisk, pluggedDisks, setDiskLimits } from './vm-disks.ts';
import { PID_FILE, reclaimLeftovers } from './leftovers.ts';
import { listenForGuest, type MigrationAddress, type MigrationFigures, sendGuest } from './live-migration.ts';
import { RuntimeBase, type RuntimeVm, STOPPED_BY_AGENT } from './runtime-base.ts';
import type { GuestDisks, GuestMigration, VmLaunch, VmReport, VmRuntime } from './vm-runtime.ts';

export type { GuestBoot, VmLaunch, VmReport, VmRunState } from './vm-runtime.ts';

/** What the guest agent prints once it has configured the guest (guest/rootfs/usr/sbin/stratoplane-guest-agent). */
const READY_LINE = 'stratoplane-guest: ready';
const VM_ID = /^vm-[0-9a-f]{12}$/;
const SETTING_NAME = /^[a-z][a-z0-9_]{0,31}$/;
const SETTING_VALUE = /^[A-Za-z0-9._:/,-]{0,255}$/;

interface Vm extends RuntimeVm {
  launch: VmLaunch;
  process: ChildProcess;
  qmp?: QmpClient;
  dir: string;
  readyWatch?: NodeJS.Timeout;
  exited: Promise<void>;
  /** The hot-plug slot each attached disk is in. */
  slots: Map<string, number>;
  /** Waiting for its guest from another host (started with `-incoming`). */
  incoming?: boolean;
  /** Its guest went to another host: this QEMU holds a paused copy only. */
  departed?: boolean;
}

/**
 * Runs each VM as a QEMU process: its kernel and initramfs from the image, QMP on a unix socket, the
 * serial console to a file, its NIC on a tap the agent made, KVM when usable else TCG. A VM is
 * `running` once its guest agent says it is ready, `failed` if QEMU exits or the guest does not get
 * there within the boot timeout, with the console's tail as the reason.
 */
export class QemuRuntime extends RuntimeBase<Vm> implements VmRuntime {
  readonly kind = 'qemu';
  readonly needsGuest = true;
  readonly accelerator: Accelerator;

  constructor(
    private readonly options: {
      stateDir: string;
      qemuBinary?: string;
      accelerator?: Accelerator;
      bootTimeoutMs?: number;
      /** The host's network namespace, where VMs' taps are: QEMU runs in it to open them. */
      netns?: string;
    },
  ) {
    super();
    this.accelerator = options.accelerator ?? chooseAccelerator();
    this.reclaimed = reclaimLeftovers(options.stateDir, (cmdline, vmId) => cmdline.includes(`process=stratoplane-${vmId}`));
  }

  /** VMs whose QEMU an earlier agent left running, killed at construction. */
  readonly reclaimed: string[];

  /** Starts QEMU for the VM; resolves once QEMU answers on QMP (state `starting`). */
  describe(): string {
    return `qemu (${this.accelerator.kind}: ${this.accelerator.reason})`;
  }

  async start(launch: VmLaunch): Promise<VmReport> {
    const vm = await this.launch(launch, false);
    this.watchForReady(vm);
    this.emit('state', this.report(launch.vmId)!);
    return this.report(launch.vmId)!;
  }

  /**
   * Starts QEMU for a VM that runs on another host now, waiting for its guest (`-incoming`) at
   * `listen`; says nothing of it until the guest runs here. Resolves once QEMU listens, with a
   * promise that resolves when the guest runs here (the VM is then `running`) and rejects if it
   * never does (QEMU is then stopped, and the VM forgotten).
   */
  async receive(launch: VmLaunch, listen: MigrationAddress): Promise<{ resumed: Promise<void> }> {
    const vm = await this.launch(launch, true);
    vm.incoming = true;
    try {
      const { resumed } = await listenForGuest(vm.qmp!, listen, [...vm.slots.keys()]);
      const arrived = resumed.then(
        () => {
          vm.incoming = false;
          this.transition(vm, 'running');
        },
        async (error: Error) => {
          await this.discard(vm);
          throw error;
        },
      );
      arrived.catch(() => {});
      return { resumed: arrived };
    } catch (error) {
      await this.discard(vm);
      throw error;
    }
  }

  /**
   * Sends a running VM's guest to the QEMU that listens for it at `to` (see sendGuest). Once it
   * completed, the guest here is paused for good: stopping it then only ends its QEMU.
   */
  async send(vmId: string, to: MigrationAddress, options: { boundMs: number; onStop: () => void }): Promise<MigrationFigures> {
    const vm = this.live(vmId);
    if (vm.state !== 'running') throw new Error(`vm ${vmId} is ${vm.state}: only a running guest migrates`);
    const figures = await sendGuest(vm.qmp, to, { ...options, diskIds: [...vm.slots.keys()] });
    vm.departed = true;
    return figures;
  }

  /**
   * Runs a guest again here that was sent away, once it is certain it runs nowhere else (its
   * migration was aborted after the transfer: the destination's QEMU died before its agent said the
   * guest runs there). Its memory here is as it was at the last copy.
   */
  async resumeHere(vmId: string): Promise<void> {
    const vm = this.live(vmId);
    if (!vm.departed) return;
    await vm.qmp.execute('cont');
    vm.departed = false;
  }

  /** Ends a VM's QEMU at once and forgets it, telling nothing: a guest that never ran here. */
  private async discard(vm: Vm): Promise<void> {
    vm.state = 'stopping';
    vm.process.kill('SIGKILL');
    await vm.exited;
    vm.state = 'stopped';
    this.forget(vm.vmId);
  }

  /** Starts QEMU for the VM, paused until its disks are in (`-S`), or waiting for its guest from another host. */
  private async launch(launch: VmLaunch, incoming: boolean): Promise<Vm & { qmp: QmpClient }> {
    if (!VM_ID.test(launch.vmId)) throw new Error(`not a VM id: ${JSON.stringify(launch.vmId)}`);
    const boot = launch.boot;
    if (!boot) throw new Error(`vm ${launch.vmId}: QEMU needs an image to boot (kernel and initramfs)`);
    const current = this.vms.get(launch.vmId);
    if (current && !['stopped', 'failed'].includes(current.state)) throw new Error(`vm ${launch.vmId} is already ${current.state}`);
    for (const [name, value] of Object.entries(launch.settings)) {
      if (!SETTING_NAME.test(name) || !SETTING_VALUE.test(value)) throw new Error(`guest setting ${name}=${value} cannot go on a kernel command line`);
    }
    const dir = path.join(this.options.stateDir, launch.vmId);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const qmpSocket = path.join(dir, 'qmp.sock');
    const consoleLog = path.join(dir, 'console.log');
    const paused = !incoming && (launch.disks?.length ?? 0) > 0;
    const cmdline = [boot.cmdline, ...Object.entries(launch.settings).map(([name, value]) => `stratoplane.${name}=${value}`)].join(' ');
    const args = [
      ...accelArgs(this.accelerator),
      '-machine',
      'q35',
      '-m',
      String(launch.memoryMiB),
      '-smp',
      String(launch.vcpus),
      '-name',
      `${launch.vmId},process=stratoplane-${launch.vmId}`,
      '-display',
      'none',
      '-nodefaults',
      // A guest that panics (panic=1) or reboots itself ends its QEMU: the runtime reports it.
      '-no-reboot',
      // Paused until its disks are in: the guest finds them at boot as it would after a hot-plug. A
      // guest without disks runs at once; one that comes from another host, once it arrived.
      ...(incoming ? ['-incoming', 'defer'] : paused ? ['-S'] : []),
      '-kernel',
      boot.kernel,
      '-initrd',
      boot.initrd,
      '-append',
      cmdline,
      '-chardev',
      `file,id=console,path=${consoleLog}`,
      '-serial',
      'chardev:console',
      '-qmp',
      `unix:${qmpSocket},server=on,wait=off`,
      '-pidfile',
      path.join(dir, PID_FILE),
      '-device',
      'virtio-rng-pci',
      ...diskBusArgs(),
      ...(launch.nic
        ? ['-netdev', `tap,id=nic0,ifname=${launch.nic.tap},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=nic0,mac=${launch.nic.mac},romfile=`]
        : []),
    ];
    const qemu = this.options.qemuBinary ?? 'qemu-system-x86_64';
    // A guest never runs without the agent that answers for it, even one SIGKILLed: QEMU gets SIGKILL
    // when the agent dies (setpriv's parent-death signal). Otherwise a guest that arrived on a host
    // whose agent died would run where the control plane does not know it, beside its source's copy.
    const guarded = ['setpriv', '--pdeathsig', 'KILL', qemu, ...args];
    // `ip netns exec` enters the namespace and then becomes setpriv, then QEMU (exec): the child's pid is QEMU's.
    const [command, commandArgs] = this.options.netns ? ['ip', ['netns', 'exec', this.options.netns, ...guarded]] : [guarded[0]!, guarded.slice(1)];
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const vm: Vm = { vmId: launch.vmId, launch, state: 'starting', process: child, dir, exited, slots: new Map() };
    this.vms.set(launch.vmId, vm);
    child.once('exit', (code, signal) => {
      clearInterval(vm.readyWatch);
      vm.qmp?.close();
      // A guest that never ran here, or that runs elsewhere now: this host has nothing to say of it.
      if (vm.incoming || vm.departed) {
        vm.state = 'stopped';
        return;
      }
      // Stopped for the reason its stop gave (its owner's, a reboot's, the agent's shutdown).
      if (vm.state === 'stopping') return this.transition(vm, 'stopped', vm.reason ?? STOPPED_BY_AGENT);
      const how = signal ? `killed by ${signal}` : `exited with ${code}`;
      const said = stderr.trim() ? `; QEMU said: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : '';
      this.transition(vm, 'failed', `QEMU ${how}${said}; console: ${this.telling(launch.vmId)}`);
    });
    child.once('error', (error) => this.transition(vm, 'failed', `QEMU could not start: ${error.message}`));
    try {
      vm.qmp = await QmpClient.connect(qmpSocket, 10_000);
      for (const disk of launch.disks ?? []) await this.plug(vm, disk);
      if (paused) await vm.qmp.execute('cont');
    } catch (error) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`vm ${launch.vmId}: QEMU did not come up: ${(error as Error).message}${stderr ? ` (${stderr.trim()})` : ''}`);
    }
    return vm as Vm & { qmp: QmpClient };
  }

  private watchForReady(vm: Vm) {
    const deadline = Date.now() + (this.options.bootTimeoutMs ?? 90_000);
    vm.readyWatch = setInterval(() => {
      if (vm.state !== 'starting') return clearInterval(vm.readyWatch);
      if (this.consoleTail(vm.launch.vmId, 64 * 1024).includes(READY_LINE)) {
        clearInterval(vm.readyWatch);
        this.transition(vm, 'running');
      } else if (Date.now() > deadline) {
        clearInterval(vm.readyWatch);
        const tail = this.telling(vm.launch.vmId);
        vm.state = 'stopping';
        vm.process.kill('SIGKILL');
        this.transition(
          vm,
          'failed',
          `the guest did not report ready within ${(this.options.bootTimeoutMs ?? 90_000) / 1000} s; console: ${tail || '(empty)'}`,
        );
      }
    }, 200);
  }

  /**
   * Stops the VM: an ACPI power button first (as EC2's stop and GCE's do), QEMU's `quit` after
   * `graceMs`, SIGKILL if even that is not answered.
   */
  async stop(vmId: string, graceMs = 5_000, reason = STOPPED_BY_AGENT): Promise<void> {
    const vm = this.vms.get(vmId);
    if (!vm || vm.state === 'stopped' || vm.state === 'failed') return;
    if (vm.incoming || vm.departed) return this.discard(vm);
    vm.state = 'stopping';
    vm.reason = reason;
    this.emit('state', this.report(vmId)!);
    const exitedWithin = (ms: number) => Promise.race([vm.exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms))]);
    await vm.qmp?.execute('system_powerdown').catch(() => {});
    if (await exitedWithin(graceMs)) return;
    await vm.qmp?.execute('quit').catch(() => {});
    if (await exitedWithin(2_000)) return;
    vm.process.kill('SIGKILL');
    await vm.exited;
  }

  /** The console lines that say why a guest died: from a kernel panic when there is one, else the last lines. */
  private telling(vmId: string): string {
    const lines = this.consoleTail(vmId, 16 * 1024)
      .replaceAll('\r', '')
      .trim()
      .split('\n');
    const panic = lines.findIndex((line) => line.includes('Kernel panic'));
    return (panic >= 0 ? lines.slice(panic, panic + 4) : lines.slice(-12)).join('\n');
  }

  private async plug(vm: Vm, disk: DiskAttachment) {
    if (vm.slots.has(disk.diskId)) throw new Error(`disk ${disk.diskId} is already attached to vm ${vm.launch.vmId}`);
    const used = new Set(vm.slots.values());
    // Where the control plane placed it (the same on every host the VM runs on), else the first free slot.
    const slot = disk.slot ?? Array.from({ length: DISK_SLOTS }, (_, index) => index).find((index) => !used.has(index));
    if (slot === undefined) throw new Error(`vm ${vm.launch.vmId} has all ${DISK_SLOTS} disk slots in use`);
    if (used.has(slot)) throw new Error(`vm ${vm.launch.vmId}'s disk slot ${slot} is still taken by another disk`);
    await attachDisk(vm.qmp!, slot, disk);
    vm.slots.set(disk.diskId, slot);
  }

  private live(vmId: string): Vm & { qmp: QmpClient } {
    const vm = this.vms.get(vmId);
    if (!vm?.qmp || !['starting', 'running'].includes(vm.state)) throw new Error(`vm ${vmId} is not running on this host`);
    return vm as Vm & { qmp: QmpClient };
  }

  /** Hot-plugs a disk into a running VM. */
  attachDisk(vmId: string, disk: DiskAttachment): Promise<void> {
    return this.plug(this.live(vmId), disk);
  }

  /** Hot-unplugs a disk; the guest must let go of it (see detachDisk). */
  async detachDisk(vmId: string, diskId: string, timeoutMs?: number): Promise<void> {
    const vm = this.live(vmId);
    if (!vm.slots.has(diskId)) throw new Error(`disk ${diskId} is not attached to vm ${vmId}`);
    await detachDisk(vm.qmp, diskId, timeoutMs);
    vm.slots.delete(diskId);
  }

  /** Changes a disk's IOPS and throughput while the guest uses it. */
  setDiskLimits(vmId: string, diskId: string, iops: number, throughputMiBps: number): Promise<void> {
    return setDiskLimits(this.live(vmId).qmp, diskId, iops, throughputMiBps);
  }

  /** Grows an attached disk while the guest runs. */
  growDisk(vmId: string, diskId: string, sizeGiB: number): Promise<void> {
    return growDisk(this.live(vmId).qmp, diskId, sizeGiB);
  }

  /** The disks of running guests, changed live: what the agent's VM lifecycle uses. */
  readonly disks: GuestDisks = {
    attach: (vmId, disk) => this.attachDisk(vmId, disk),
    detach: (vmId, diskId) => this.detachDisk(vmId, diskId),
    setLimits: (vmId, diskId, iops, throughputMiBps) => this.setDiskLimits(vmId, diskId, iops, throughputMiBps),
    grow: (vmId, diskId, sizeGiB) => this.growDisk(vmId, diskId, sizeGiB),
    inspect: (vmId) => pluggedDisks(this.live(vmId).qmp),
  };

  readonly migration: GuestMigration = {
    receive: (launch, listen) => this.receive(launch, listen),
    send: (vmId, to, options) => this.send(vmId, to, options),
    resumeHere: (vmId) => this.resumeHere(vmId),
  };

  /** The QMP connection of a running VM, for what the agent does live (hot-plug, throttles, migration). */
  monitor(vmId: string): QmpClient | undefined {
    return this.vms.get(vmId)?.qmp;
  }
}
