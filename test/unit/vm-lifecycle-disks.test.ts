import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LaunchDisk, VmLaunchSpec } from '#events/vm-config.ts';
import type { ReportVmStateRequest } from '#events/vm-lifecycle.ts';
import { VmLifecycle } from '#host-agent/vm-lifecycle.ts';
import { ProcessRuntime } from '#host-agent/vm-runtime/process-runtime.ts';
import { type DiskAttachment, deleteDiskFiles, ensureDiskFile, poolDirOf } from '#host-agent/vm-runtime/vm-disks.ts';
import type { GuestDisks, VmLaunch, VmReport } from '#host-agent/vm-runtime/vm-runtime.ts';

const GiB = 1024 ** 3;
const vm = { vmId: 'vm-0000000000c1', ip: '10.0.0.5', networkId: 'net-1' };
const launch = (disks: LaunchDisk[], change: Partial<VmLaunchSpec> = {}): VmLaunchSpec => ({
  powerState: 'running',
  bootGeneration: 0,
  machineType: 's1.nano',
  memoryMiB: 96,
  vcpus: 1,
  hostname: 'web',
  disks,
  ...change,
});
const diskA: LaunchDisk = { diskId: 'disk-00000000000a', poolId: 'pool-1', sizeGiB: 1, iops: 3000, throughputMiBps: 125 };
const diskB: LaunchDisk = { diskId: 'disk-00000000000b', poolId: 'pool-2', sizeGiB: 2, iops: 6000, throughputMiBps: 250 };

/** The process runtime with a pretend guest to plug disks into: it records what it is asked, and fails when told. */
class GuestedRuntime extends ProcessRuntime {
  readonly calls: string[] = [];
  failNext: string | undefined;
  private check(call: string) {
    this.calls.push(call);
    if (this.failNext && call.startsWith(this.failNext)) {
      this.failNext = undefined;
      throw new Error(`QEMU said no to ${call}`);
    }
  }
  override async start(launch: VmLaunch): Promise<VmReport> {
    this.calls.push(`boot ${(launch.disks ?? []).map((disk) => `${disk.diskId}@${disk.iops}/${disk.throughputMiBps}`).join(',')}`);
    return super.start(launch);
  }
  readonly disks: GuestDisks = {
    attach: async (_vmId, disk: DiskAttachment) => this.check(`attach ${disk.diskId} ${disk.iops}/${disk.throughputMiBps}`),
    detach: async (_vmId, diskId) => this.check(`detach ${diskId}`),
    setLimits: async (_vmId, diskId, iops, throughputMiBps) => this.check(`limits ${diskId} ${iops}/${throughputMiBps}`),
    grow: async (_vmId, diskId, sizeGiB) => this.check(`grow ${diskId} ${sizeGiB}`),
    inspect: async () => [],
  };
}

function setUp(runtimeOf: (dir: string) => ProcessRuntime, diskRetryMs = 60_000) {
  const dir = mkdtempSync(path.join(tmpdir(), 'vm-lifecycle-disks-'));
  const runtime = runtimeOf(path.join(dir, 'vms'));
  const reports: ReportVmStateRequest[] = [];
  const poolsDir = path.join(dir, 'pools');
  const lifecycle = new VmLifecycle({
    runtime,
    bootDir: path.join(dir, 'boot'),
    poolsDir,
    report: (_vmId, report) => reports.push(report),
    log: () => {},
    diskRetryMs,
  });
  cleanup = async () => {
    await lifecycle.close();
    rmSync(dir, { recursive: true, force: true });
  };
  const apply = async (spec: VmLaunchSpec) => {
    lifecycle.update([vm], new Map([[vm.vmId, spec]]));
    await lifecycle.settled();
  };
  const fileOf = (disk: LaunchDisk) => path.join(poolsDir, disk.poolId, `${disk.diskId}.raw`);
  return { runtime, lifecycle, reports, apply, fileOf };
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe('VmLifecycle with disks', () => {
  it('plugs disks in at boot, hot-plugs, changes limits and size live, unplugs, and keeps the files', async () => {
    const { runtime, lifecycle, apply, fileOf } = setUp((dir) => new GuestedRuntime({ stateDir: dir }));
    const guest = runtime as GuestedRuntime;
    await apply(launch([diskA]));
    expect(guest.calls).toEqual(['boot disk-00000000000a@3000/125']);
    // Sparse files in their pools' folders, at the disks' sizes.
    expect(statSync(fileOf(diskA)).size).toBe(GiB);
    expect(statSync(fileOf(diskA)).blocks).toBe(0);

    await apply(launch([diskA, diskB]));
    expect(guest.calls.slice(1)).toEqual(['attach disk-00000000000b 6000/250']);
    expect(statSync(fileOf(diskB)).size).toBe(2 * GiB);

    // The same spec again: nothing to do.
    await apply(launch([diskA, diskB]));
    expect(guest.calls).toHaveLength(2);

    await apply(launch([{ ...diskA, iops: 4000, throughputMiBps: 500, sizeGiB: 3 }, diskB]));
    expect(guest.calls.slice(2)).toEqual(['grow disk-00000000000a 3', 'limits disk-00000000000a 4000/500']);

    await apply(launch([diskB]));
    expect(guest.calls.slice(4)).toEqual(['detach disk-00000000000a']);
    expect(lifecycle.diskStatus(vm.vmId)).toEqual({ inGuest: true, disks: [diskB] });
    // Detached is not deleted: the data stays for the next VM it is attached to.
    expect(existsSync(fileOf(diskA))).toBe(true);

    // Stopped and started: the files are where they were, and the guest gets them at boot.
    writeFileSync(fileOf(diskB), 'data', { flag: 'r+' });
    await apply(launch([diskB], { powerState: 'stopped' }));
    await apply(launch([diskB], { bootGeneration: 1 }));
    expect(guest.calls.at(-1)).toBe('boot disk-00000000000b@6000/250');
    expect(statSync(fileOf(diskB)).size).toBe(2 * GiB);
  });

  it('says in the VM reports what could not be done to its disks, until it is done', async () => {
    const { runtime, reports, apply } = setUp((dir) => new GuestedRuntime({ stateDir: dir }));
    const guest = runtime as GuestedRuntime;
    await apply(launch([]));
    guest.failNext = 'attach';
    await apply(launch([diskA]));
    expect(reports.at(-1)).toMatchObject({
      state: 'running',
      reason: 'disk disk-00000000000a not attached: QEMU said no to attach disk-00000000000a 3000/125',
    });

    // Tried again at the next change the agent hears of; once plugged in, the reason goes.
    await apply(launch([diskA]));
    expect(guest.calls.filter((call) => call.startsWith('attach'))).toHaveLength(2);
    expect(reports.at(-1)!.state).toBe('running');
    expect(reports.at(-1)).not.toHaveProperty('reason');

    guest.failNext = 'detach';
    await apply(launch([]));
    expect(reports.at(-1)!.reason).toBe('disk disk-00000000000a still attached: QEMU said no to detach disk-00000000000a');

    // A pool id that would leave the pools' folder never becomes a path.
    await apply(launch([{ ...diskB, poolId: '../../etc' }]));
    expect(reports.at(-1)!.reason).toContain('disk disk-00000000000b not attached: not a storage pool id: "../../etc"');
  });

  it('tries a failed disk change again on its own, backing off, and stops once it is done', async () => {
    const { runtime, reports, apply, lifecycle } = setUp((dir) => new GuestedRuntime({ stateDir: dir }), 100);
    const guest = runtime as GuestedRuntime;
    await apply(launch([]));
    guest.failNext = 'attach';
    await apply(launch([diskA]));
    expect(reports.at(-1)!.reason).toContain('not attached');
    // No new change comes: the retry alone plugs it in (after 100 ms) and the reason goes.
    await expect.poll(() => guest.calls.filter((call) => call.startsWith('attach')).length, { timeout: 2_000 }).toBe(2);
    await lifecycle.settled();
    expect(reports.at(-1)).not.toHaveProperty('reason');
    // Done: nothing is tried again.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(guest.calls.filter((call) => call.startsWith('attach'))).toHaveLength(2);
  });

  it('with the process runtime (no guest), keeps each disk as its file only, grown as the disk grows', async () => {
    const { lifecycle, apply, fileOf } = setUp((dir) => new ProcessRuntime({ stateDir: dir }));
    await apply(launch([diskA]));
    await apply(launch([diskA, diskB]));
    await apply(launch([{ ...diskA, sizeGiB: 4 }, diskB]));
    expect(statSync(fileOf(diskA)).size).toBe(4 * GiB);
    expect(statSync(fileOf(diskB)).size).toBe(2 * GiB);
    expect(lifecycle.diskStatus(vm.vmId)).toEqual({ inGuest: false, disks: [{ ...diskA, sizeGiB: 4 }, diskB] });
  });

  it("deletes a deleted disk's file, once no guest here has it", async () => {
    const { lifecycle, apply, fileOf } = setUp((dir) => new GuestedRuntime({ stateDir: dir }));
    await apply(launch([diskA, diskB]));
    // The deletion outran the detach: the file stays while the guest has the disk, and goes once it is unplugged.
    lifecycle.deleteDisk(diskA.poolId, diskA.diskId);
    expect(existsSync(fileOf(diskA))).toBe(true);
    await apply(launch([diskB]));
    expect(existsSync(fileOf(diskA))).toBe(false);
    expect(existsSync(fileOf(diskB))).toBe(true);
    // Or once its VM stops.
    lifecycle.deleteDisk(diskB.poolId, diskB.diskId);
    expect(existsSync(fileOf(diskB))).toBe(true);
    await apply(launch([diskB], { powerState: 'stopped' }));
    expect(existsSync(fileOf(diskB))).toBe(false);
    // A disk that never had a file here: nothing to do.
    lifecycle.deleteDisk('pool-9', 'disk-0000000000ff');
  });
});

describe('disk files', () => {
  it('are sparse, grow, never shrink, and stay inside their pool folder', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'disk-files-'));
    try {
      const pool = poolDirOf(dir, 'pool-1');
      const file = await ensureDiskFile(pool, 'disk-0000000000f1', 1, 'raw');
      expect(file).toBe(path.join(dir, 'pool-1', 'disk-0000000000f1.raw'));
      expect(statSync(file).blocks).toBe(0);
      await ensureDiskFile(pool, 'disk-0000000000f1', 2, 'raw');
      expect(statSync(file).size).toBe(2 * GiB);
      await expect(ensureDiskFile(pool, 'disk-0000000000f1', 1, 'raw')).rejects.toThrow(/never shrinks/);
      for (const poolId of ['..', '../x', 'a/b', '', '.hidden', 'A']) expect(() => poolDirOf(dir, poolId)).toThrow(/not a storage pool id/);
      await expect(ensureDiskFile(pool, '../../disk-0000000000f1', 1, 'raw')).rejects.toThrow(/not a disk id/);
      expect(() => deleteDiskFiles(pool, '../pool-1/disk-0000000000f1')).toThrow(/not a disk id/);
      expect(deleteDiskFiles(pool, 'disk-0000000000f1')).toBe(true);
      expect(deleteDiskFiles(pool, 'disk-0000000000f1')).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
