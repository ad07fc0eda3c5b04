import { describe, expect, it } from 'vitest';
import { type PowerFields, powerChange } from '#functions/compute/vm-power.ts';
import { hostnameOf, launchDisksOf, launchSpecOf } from '#functions/host-sync/vm-launch.ts';
import type { DiskItem } from '#functions/storage/disks.ts';
import type { StoredVm } from '#functions/compute/vms.ts';

const vm = (state: PowerFields['state'], powerState: PowerFields['powerState'] = 'running', bootGeneration = 0): PowerFields => ({
  state,
  powerState,
  bootGeneration,
});

describe('start, stop and reboot', () => {
  it('stops a running VM through its host, and one that runs nothing at once; a stopped one stays as it is', () => {
    expect(powerChange(vm('running'), 'stop')).toEqual({ state: 'stopping', stateReason: 'stopped by its owner', powerState: 'stopped', bootGeneration: 0 });
    expect(powerChange(vm('starting'), 'stop')).toMatchObject({ state: 'stopping', powerState: 'stopped' });
    expect(powerChange(vm('provisioning'), 'stop')).toMatchObject({ state: 'stopped', powerState: 'stopped' });
    expect(powerChange(vm('failed'), 'stop')).toMatchObject({ state: 'stopped', powerState: 'stopped' });
    expect(powerChange(vm('stopped', 'stopped'), 'stop')).toBeUndefined();
    expect(powerChange(vm('stopping', 'stopped'), 'stop')).toBeUndefined();
  });

  it('starts a stopped or failed VM with a new boot generation; a running one stays as it is', () => {
    expect(powerChange(vm('stopped', 'stopped', 2), 'start')).toEqual({ state: 'provisioning', powerState: 'running', bootGeneration: 3 });
    // Failed while meant to run: starting it boots it again.
    expect(powerChange(vm('failed', 'running', 0), 'start')).toEqual({ state: 'provisioning', powerState: 'running', bootGeneration: 1 });
    // Stopping, and started again before its host got there.
    expect(powerChange(vm('stopping', 'stopped', 4), 'start')).toMatchObject({ powerState: 'running', bootGeneration: 5 });
    expect(powerChange(vm('running'), 'start')).toBeUndefined();
    expect(powerChange(vm('provisioning'), 'start')).toBeUndefined();
  });

  it('reboots a running VM only', () => {
    expect(powerChange(vm('running', 'running', 7), 'reboot')).toMatchObject({ state: 'running', powerState: 'running', bootGeneration: 8 });
    for (const state of ['provisioning', 'starting', 'stopping', 'stopped', 'failed'] as const)
      expect(() => powerChange(vm(state), 'reboot')).toThrow(/only a running VM can be rebooted/);
    expect(() => powerChange(vm('running', 'stopped'), 'reboot')).toThrow(/stopped by its owner/);
  });
});

describe("a host's launch spec", () => {
  const stored = { vmId: 'vm-0123456789ab', name: 'Web Server #1', state: 'provisioning' } as StoredVm;
  const image = { imageId: 'img-1', sha256: 'a'.repeat(64), sizeBytes: 10, bucket: 'b', key: 'images/img-1/x', url: 'http://127.0.0.1:1/x' };

  it('gives size, intent, host name and the image with its URL', () => {
    expect(launchSpecOf({ ...stored, imageId: 'img-1', machineType: 's1.micro', bootGeneration: 2 }, image)).toEqual({
      powerState: 'running',
      bootGeneration: 2,
      machineType: 's1.micro',
      memoryMiB: 128,
      vcpus: 1,
      hostname: 'web-server-1',
      image: { imageId: 'img-1', sha256: 'a'.repeat(64), sizeBytes: 10, url: 'http://127.0.0.1:1/x' },
    });
  });

  it('gives none while the image is not in the region yet', () => {
    expect(launchSpecOf({ ...stored, imageId: 'img-1', waitingForImage: true }, image)).toBeUndefined();
    expect(launchSpecOf({ ...stored, imageId: 'img-1' }, undefined)).toBeUndefined();
    expect(launchSpecOf(stored, undefined)).toMatchObject({ machineType: 's1.nano', memoryMiB: 96 });
  });

  it('gives none for a VM that failed before any host ran it (its image copy failed), until its owner starts it', () => {
    expect(launchSpecOf({ ...stored, imageId: 'img-1', state: 'failed' }, image)).toBeUndefined();
    // Failed on its host: the host knows, and keeps it failed until a new boot generation.
    expect(launchSpecOf({ ...stored, imageId: 'img-1', state: 'failed', stateObservedAt: 5 }, image)).toMatchObject({ bootGeneration: 0 });
    expect(launchSpecOf({ ...stored, imageId: 'img-1', state: 'provisioning', bootGeneration: 1 }, image)).toMatchObject({ bootGeneration: 1 });
  });

  it('makes a host name of any VM name', () => {
    expect(hostnameOf('---', 'vm-1')).toBe('vm-1');
    expect(hostnameOf('a'.repeat(70), 'vm-1')).toHaveLength(63);
    expect(hostnameOf('ünïcode name', 'vm-1')).toBe('n-code-name');
  });

  it("carries the VM's attached disks, by disk id: those whose own record says they are attached to it", () => {
    const disk = (diskId: string, change: Partial<DiskItem> = {}) =>
      ({ diskId, poolId: 'pool-1', sizeGiB: 10, iops: 3000, throughputMiBps: 125, state: 'attached', attachedTo: stored.vmId, ...change }) as DiskItem;
    const disks = launchDisksOf(stored.vmId, [
      disk('disk-00000000000b', { iops: 6000 }),
      disk('disk-00000000000a'),
      // Detached meanwhile, attached elsewhere, or deleted: not this VM's.
      disk('disk-00000000000c', { state: 'available', attachedTo: undefined }),
      disk('disk-00000000000d', { attachedTo: 'vm-other0000000' }),
      undefined,
    ]);
    expect(disks).toEqual([
      { diskId: 'disk-00000000000a', poolId: 'pool-1', sizeGiB: 10, iops: 3000, throughputMiBps: 125 },
      { diskId: 'disk-00000000000b', poolId: 'pool-1', sizeGiB: 10, iops: 6000, throughputMiBps: 125 },
    ]);
    expect(launchSpecOf(stored, undefined, disks)?.disks).toEqual(disks);
    expect(launchSpecOf(stored, undefined, [])).not.toHaveProperty('disks');
  });
});
