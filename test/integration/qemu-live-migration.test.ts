import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MigrationAdmission } from '../../host-agent/data-plane/migration-admission.ts';
import { type GuestBoot, QemuRuntime, type VmLaunch, type VmReport } from '../../host-agent/vm-runtime/qemu-runtime.ts';
import { DataPlaneLab, type LabHost, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { guestBoot, qemuUnavailableReason } from '../helpers/guest.ts';

const run = promisify(execFile);
const unavailable = qemuUnavailableReason() ?? (await labUnavailableReason());
if (unavailable) console.warn(`live migration tests skipped: ${unavailable}`);

/**
 * Real guests moving between two host namespaces over the lab's underlay, QEMU to QEMU as the host
 * agents drive it: the destination listens first, admitting only its source; the source sends.
 */
describe.skipIf(unavailable !== undefined)('QEMU live migration', () => {
  const lab = new DataPlaneLab(`lm${process.pid % 10_000}`, '172.31.243');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'qemu-migration-'));
  let source: LabHost;
  let destination: LabHost;
  let stranger: LabHost;
  let sourceRuntime: QemuRuntime;
  let destinationRuntime: QemuRuntime;
  let admission: MigrationAdmission;
  let boot: GuestBoot;
  const reports: (VmReport & { host: string })[] = [];

  const launchOf = (vmId: string): VmLaunch => ({ vmId, memoryMiB: 96, vcpus: 1, boot, settings: { hostname: 'mover' } });
  const running = (runtime: QemuRuntime, vmId: string) =>
    vi.waitFor(() => expect(runtime.report(vmId)?.state).toBe('running'), { timeout: 70_000, interval: 200 });
  const status = async (runtime: QemuRuntime, vmId: string) => (await runtime.monitor(vmId)!.execute<{ status: string }>('query-status')).status;

  beforeAll(async () => {
    [source, destination, stranger] = (await lab.addHosts(3)) as [LabHost, LabHost, LabHost];
    boot = await guestBoot();
    sourceRuntime = new QemuRuntime({ stateDir: path.join(stateDir, 'source'), netns: source.netns, bootTimeoutMs: 60_000 });
    destinationRuntime = new QemuRuntime({ stateDir: path.join(stateDir, 'destination'), netns: destination.netns, bootTimeoutMs: 60_000 });
    sourceRuntime.on('state', (report) => reports.push({ ...report, host: 'source' }));
    destinationRuntime.on('state', (report) => reports.push({ ...report, host: 'destination' }));
    admission = await MigrationAdmission.open(destination.netns);
  }, 180_000);

  afterAll(async () => {
    await sourceRuntime?.stopAll(500);
    await destinationRuntime?.stopAll(500);
    await lab.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('moves a running guest to a destination that admits only its source: it runs on there without booting again', async () => {
    const vmId = 'vm-00000000c0a1';
    await sourceRuntime.start(launchOf(vmId));
    await running(sourceRuntime, vmId);

    const port = await admission.admit(source.underlay);
    const { resumed } = await destinationRuntime.migration.receive(launchOf(vmId), { address: destination.underlay, port });
    expect(await status(destinationRuntime, vmId)).toBe('inmigrate');
    // Another host reaches the port and is dropped before QEMU sees it: had QEMU taken its
    // connection as the guest's stream, the incoming migration would have failed on its bytes.
    const stranger_ = await run('ip', [
      'netns',
      'exec',
      stranger.netns,
      'timeout',
      '2',
      'bash',
      '-c',
      `echo garbage > /dev/tcp/${destination.underlay}/${port}`,
    ]).then(
      () => 'connected',
      () => 'refused',
    );
    expect(stranger_).toBe('refused');
    expect(await status(destinationRuntime, vmId)).toBe('inmigrate');

    let stoppedAt = 0;
    const figures = await sourceRuntime.migration.send(
      vmId,
      { address: destination.underlay, port },
      { boundMs: 60_000, onStop: () => (stoppedAt = Date.now()) },
    );
    await resumed;
    await admission.close(port);
    console.info(`migrated: ${JSON.stringify(figures)}; STOP seen ${stoppedAt > 0}`);
    expect(stoppedAt).toBeGreaterThan(0);
    expect(figures.transferredBytes).toBeGreaterThan(0);
    expect(figures.totalMs).toBeGreaterThan(0);
    expect(destinationRuntime.report(vmId)?.state).toBe('running');
    expect(await status(destinationRuntime, vmId)).toBe('running');
    // The source keeps a paused copy only, until it is stopped.
    expect(await status(sourceRuntime, vmId)).toBe('postmigrate');

    // The same guest, not a new boot: nothing booted on the destination's console, yet its guest
    // agent answers the power button there.
    expect(destinationRuntime.consoleTail(vmId)).not.toContain('stratoplane-guest: ready');
    await destinationRuntime.stop(vmId, 20_000);
    expect(destinationRuntime.consoleTail(vmId)).toContain('stratoplane-guest: shutting down');
    expect(destinationRuntime.report(vmId)?.state).toBe('stopped');

    // The source's copy ends without a word: the VM runs elsewhere, its host speaks for it.
    await sourceRuntime.stop(vmId);
    expect(sourceRuntime.report(vmId)).toBeUndefined();
    expect(reports.filter((report) => report.vmId === vmId).map(({ host, state }) => `${host} ${state}`)).toEqual([
      'source starting',
      'source running',
      'destination running',
      'destination stopping',
      'destination stopped',
    ]);
  });

  it('a destination that dies during the transfer fails the migration: the guest runs on at the source', async () => {
    const vmId = 'vm-00000000c0a2';
    await sourceRuntime.start(launchOf(vmId));
    await running(sourceRuntime, vmId);
    const port = await admission.admit(source.underlay);
    const { resumed } = await destinationRuntime.migration.receive(launchOf(vmId), { address: destination.underlay, port });
    const kill = sourceRuntime
      .monitor(vmId)!
      .waitFor('MIGRATION', 30_000, (event) => event.data?.status === 'active')
      .then(() => destinationRuntime.stop(vmId));
    await expect(sourceRuntime.migration.send(vmId, { address: destination.underlay, port }, { boundMs: 60_000, onStop: () => {} })).rejects.toThrow(
      /the migration failed.*the guest runs on at the source/,
    );
    await kill;
    await expect(resumed).rejects.toThrow();
    await admission.close(port);
    expect(destinationRuntime.report(vmId)).toBeUndefined();
    expect(await status(sourceRuntime, vmId)).toBe('running');
    expect(sourceRuntime.report(vmId)?.state).toBe('running');
    await sourceRuntime.stop(vmId, 20_000);
    expect(sourceRuntime.consoleTail(vmId)).toContain('stratoplane-guest: shutting down');
  });

  it('a migration that does not complete within its bound is cancelled: the guest runs on at the source', async () => {
    const vmId = 'vm-00000000c0a3';
    await sourceRuntime.start(launchOf(vmId));
    await running(sourceRuntime, vmId);
    const port = await admission.admit(source.underlay);
    const { resumed } = await destinationRuntime.migration.receive(launchOf(vmId), { address: destination.underlay, port });
    // 1 ms: cancelled long before 96 MiB of memory can have crossed.
    await expect(sourceRuntime.migration.send(vmId, { address: destination.underlay, port }, { boundMs: 1, onStop: () => {} })).rejects.toThrow(
      /did not complete within 0.001 s: cancelled, the guest runs on at the source/,
    );
    await expect(resumed).rejects.toThrow();
    await admission.close(port);
    await vi.waitFor(() => expect(destinationRuntime.report(vmId)).toBeUndefined(), { timeout: 10_000 });
    expect(await status(sourceRuntime, vmId)).toBe('running');
    await sourceRuntime.stop(vmId, 20_000);
    expect(sourceRuntime.consoleTail(vmId)).toContain('stratoplane-guest: shutting down');
  });
});
