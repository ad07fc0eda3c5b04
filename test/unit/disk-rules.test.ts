import { describe, expect, it } from 'vitest';
import { CreateDiskRequest, ModifyDiskRequest } from '#events/disks.ts';
import { assertDiskRules, freeSlot } from '#functions/storage/disk-rules.ts';

describe('disk rules (gp3 model)', () => {
  it.each([
    [{ sizeGiB: 1, iops: 3000, throughputMiBps: 125 }],
    [{ sizeGiB: 8, iops: 4000, throughputMiBps: 1000 }],
    [{ sizeGiB: 32, iops: 16000, throughputMiBps: 1000 }],
    [{ sizeGiB: 16384, iops: 3000, throughputMiBps: 750 }],
  ])('accepts %j', (disk) => {
    expect(() => assertDiskRules(disk)).not.toThrow();
  });

  it.each([
    [{ sizeGiB: 1, iops: 3001, throughputMiBps: 125 }, /body\.iops: rule iops-per-gib: .* 1 GiB allows at most 3000 IOPS/],
    [{ sizeGiB: 20, iops: 10001, throughputMiBps: 125 }, /20 GiB allows at most 10000 IOPS/],
    [{ sizeGiB: 100, iops: 3000, throughputMiBps: 751 }, /body\.throughputMiBps: rule throughput-per-iops: .* 3000 IOPS allow at most 750 MiB\/s/],
  ])('refuses %j naming the rule', (disk, message) => {
    expect(() => assertDiskRules(disk)).toThrow(message);
  });

  it('fills in baseline performance and checks ranges in the schema', () => {
    expect(CreateDiskRequest.parse({ name: 'd', sizeGiB: 10 })).toEqual({ name: 'd', sizeGiB: 10, iops: 3000, throughputMiBps: 125 });
    expect(CreateDiskRequest.safeParse({ name: 'd', sizeGiB: 0 }).success).toBe(false);
    expect(CreateDiskRequest.safeParse({ name: 'd', sizeGiB: 10, iops: 16001 }).success).toBe(false);
    expect(ModifyDiskRequest.safeParse({}).success).toBe(false);
  });
});

describe('freeSlot', () => {
  it('gives the lowest slot no attached disk holds, never one that is taken', () => {
    expect(freeSlot([])).toBe(0);
    expect(freeSlot([{ slot: 0 }, { slot: 2 }])).toBe(1);
    // A disk attached before slots were kept holds none; a disk read as gone neither.
    expect(freeSlot([{ slot: 1 }, {}, undefined])).toBe(0);
  });

  it('refuses a ninth disk', () => {
    expect(() => freeSlot(Array.from({ length: 8 }, (_, slot) => ({ slot })))).toThrow(/every one of a VM's 8 disk slots is taken/);
  });
});
