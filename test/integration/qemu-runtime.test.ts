import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { QemuRuntime, type VmReport } from '../../host-agent/vm-runtime/qemu-runtime.ts';
import { guestBoot, qemuUnavailableReason } from '../helpers/guest.ts';
import type { GuestBoot } from '../../host-agent/vm-runtime/qemu-runtime.ts';
import { diskLimits, ensureDiskFile } from '../../host-agent/vm-runtime/vm-disks.ts';

const unavailable = qemuUnavailableReason();
if (unavailable) console.warn(`QEMU runtime tests skipped: ${unavailable}`);

/** Real guests: the project's own image booted by QEMU (KVM where usable, TCG here). */
describe.skipIf(unavailable !== undefined)('QEMU runtime', () => {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'qemu-runtime-'));
  const runtime = new QemuRuntime({ stateDir, bootTimeoutMs: 60_000 });
  const seen: VmReport[] = [];
  runtime.on('state', (report) => seen.push(report));
  let boot: GuestBoot;

  const reached = (vmId: string, state: VmReport['state'], timeoutMs = 70_000) =>
    new Promise<VmReport>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${vmId} never ${state}; last: ${JSON.stringify(runtime.report(vmId))}`)), timeoutMs);
      const check = (report: VmReport) => {
        if (report.vmId !== vmId || report.state !== state) return;
        clearTimeout(timer);
        runtime.off('state', check);
        resolve(report);
      };
      runtime.on('state', check);
      const now = runtime.report(vmId);
      if (now) check(now);
    });

  beforeAll(async () => {
    boot = await guestBoot();
  }, 180_000);

  afterAll(async () => {
    await runtime.stopAll(500);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('boots the guest image to running: the guest made its own host keys and printed their fingerprints', async () => {
    console.info(`accelerator: ${runtime.accelerator.kind} (${runtime.accelerator.reason})`);
    const vmId = 'vm-0000000000a1';
    const started = Date.now();
    expect((await runtime.start({ vmId, memoryMiB: 96, vcpus: 1, boot, settings: { ip: '10.9.0.5/24', hostname: 'web-1' } })).state).toBe('starting');
    await reached(vmId, 'running');
    console.info(`booted to ready in ${Date.now() - started} ms`);
    const console_ = runtime.consoleTail(vmId);
    expect(console_).toMatch(
      /-----BEGIN SSH HOST KEY FINGERPRINTS-----\r?\ned25519 SHA256:[A-Za-z0-9+/]{43}\r?\necdsa SHA256:[A-Za-z0-9+/]{43}\r?\n-----END SSH HOST KEY FINGERPRINTS-----/,
    );
    expect(console_).toContain('stratoplane-guest: ready ip=10.9.0.5/24');
    expect(await runtime.monitor(vmId)!.execute('query-status')).toMatchObject({ running: true, status: 'running' });

    // A stop presses the power button: the guest shuts itself down well within the grace period.
    const stopping = Date.now();
    await runtime.stop(vmId, 20_000);
    expect(Date.now() - stopping).toBeLessThan(15_000);
    expect(runtime.consoleTail(vmId)).toContain('stratoplane-guest: shutting down');
    expect(runtime.report(vmId)!.state).toBe('stopped');
    expect(seen.filter((report) => report.vmId === vmId).map((report) => report.state)).toEqual(['starting', 'running', 'stopping', 'stopped']);
  });

  it('gives a VM sparse disks at boot and while it runs, with live limits, growth and detach, as the guest sees them', async () => {
    const vmId = 'vm-0000000000b1';
    const pool = path.join(stateDir, 'pool-1');
    const boot1 = await ensureDiskFile(pool, 'disk-0000000000d1', 1, 'raw');
    const hot = await ensureDiskFile(pool, 'disk-0000000000d2', 2, 'qcow2');
    // Sparse: a 1 GiB disk takes no blocks until written.
    expect(statSync(boot1).blocks * 512).toBeLessThan(1024 * 1024);
    const sawDisks = (pattern: RegExp, timeoutMs = 20_000) =>
      vi.waitFor(() => expect(runtime.consoleTail(vmId)).toMatch(pattern), { timeout: timeoutMs, interval: 250 });

    await runtime.start({
      vmId,
      memoryMiB: 96,
      vcpus: 1,
      boot,
      settings: {},
      disks: [{ diskId: 'disk-0000000000d1', file: boot1, format: 'raw', iops: 3000, throughputMiBps: 125 }],
    });
    await reached(vmId, 'running');
    await sawDisks(/disk vda serial=disk-0000000000d1 bytes=1073741824/);
    const monitor = runtime.monitor(vmId)!;
    expect(await diskLimits(monitor, 'disk-0000000000d1')).toEqual({ iops: 3000, bps: 125 * 1024 * 1024 });

    await runtime.attachDisk(vmId, { diskId: 'disk-0000000000d2', file: hot, format: 'qcow2', iops: 6000, throughputMiBps: 250 });
    await sawDisks(/disk vdb serial=disk-0000000000d2 bytes=2147483648/);
    await runtime.setDiskLimits(vmId, 'disk-0000000000d2', 16000, 1000);
    expect(await diskLimits(monitor, 'disk-0000000000d2')).toEqual({ iops: 16000, bps: 1000 * 1024 * 1024 });
    await runtime.growDisk(vmId, 'disk-0000000000d2', 4);
    await sawDisks(/disk vdb serial=disk-0000000000d2 bytes=4294967296/);

    await runtime.detachDisk(vmId, 'disk-0000000000d1');
    await vi.waitFor(
      () => {
        const after = runtime
          .consoleTail(vmId)
          .split(/disk vdb serial=disk-0000000000d2 bytes=4294967296/)
          .pop()!;
        expect(after).not.toContain('disk-0000000000d1');
        expect(runtime.consoleTail(vmId).lastIndexOf('serial=disk-0000000000d1')).toBeLessThan(
          runtime.consoleTail(vmId).lastIndexOf('serial=disk-0000000000d2'),
        );
      },
      { timeout: 20_000, interval: 250 },
    );
    expect(await diskLimits(monitor, 'disk-0000000000d1')).toBeUndefined();
    await expect(runtime.attachDisk(vmId, { diskId: '../../x', file: hot, format: 'raw', iops: 3000, throughputMiBps: 125 })).rejects.toThrow(/not a disk id/);
    await runtime.stop(vmId, 500);
  });

  it('fails a VM whose image does not boot, with the console and QEMU in the reason', async () => {
    const vmId = 'vm-0000000000a2';
    const badDir = mkdtempSync(path.join(tmpdir(), 'bad-image-'));
    writeFileSync(path.join(badDir, 'vmlinuz'), 'not a kernel');
    await expect(runtime.start({ vmId, memoryMiB: 96, vcpus: 1, boot: { ...boot, kernel: path.join(badDir, 'vmlinuz') }, settings: {} })).rejects.toThrow(
      /QEMU did not come up.*(linux kernel|kernel)/is,
    );
    // A kernel that boots but an initramfs with no init: the kernel panics, QEMU exits (-no-reboot).
    writeFileSync(path.join(badDir, 'initrd.img'), Buffer.alloc(4096));
    await runtime.start({ vmId, memoryMiB: 96, vcpus: 1, boot: { ...boot, initrd: path.join(badDir, 'initrd.img') }, settings: {} });
    const failed = await reached(vmId, 'failed');
    expect(failed.reason).toMatch(/^QEMU exited with 0; console: .*Kernel panic - not syncing: VFS: Unable to mount root fs/s);
    rmSync(badDir, { recursive: true, force: true });
  });

  it('refuses what would escape its folder or inject kernel parameters', async () => {
    await expect(runtime.start({ vmId: '../../etc', memoryMiB: 96, vcpus: 1, boot, settings: {} })).rejects.toThrow(/not a VM id/);
    // A value with a space would add `init=/bin/sh` (a root shell on the console) to the guest's command line.
    await expect(runtime.start({ vmId: 'vm-0000000000a3', memoryMiB: 96, vcpus: 1, boot, settings: { hostname: 'web init=/bin/sh' } })).rejects.toThrow(
      /cannot go on a kernel command line/,
    );
    await expect(runtime.start({ vmId: 'vm-0000000000a3', memoryMiB: 96, vcpus: 1, boot, settings: { 'x init': '1' } })).rejects.toThrow(
      /cannot go on a kernel command line/,
    );
    expect(runtime.report('vm-0000000000a3')).toBeUndefined();
  });
});
