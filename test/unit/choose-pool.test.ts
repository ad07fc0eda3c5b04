import { describe, expect, it } from 'vitest';
import { choosePool, fits, type StoragePoolView } from '#functions/storage/storage-pools.ts';

const pool = (poolId: string, free: [number, number, number]): StoragePoolView => ({
  poolId,
  capacityGiB: 1000,
  iops: 10_000,
  throughputMiBps: 1000,
  freeGiB: free[0],
  freeIops: free[1],
  freeThroughputMiBps: free[2],
  createdAt: '',
});
const need = { sizeGiB: 100, iops: 3000, throughputMiBps: 125 };

describe('choosePool', () => {
  it('only picks pools with room in all three dimensions', () => {
    const pools = [
      pool('no-gib', [50, 10_000, 1000]),
      pool('no-iops', [1000, 2000, 1000]),
      pool('no-throughput', [1000, 10_000, 100]),
      pool('ok', [200, 3000, 125]),
    ];
    expect(pools.filter((candidate) => fits(candidate, need)).map((candidate) => candidate.poolId)).toEqual(['ok']);
    for (let i = 0; i < 20; i++) expect(choosePool(pools, need, new Set())?.poolId).toBe('ok');
    expect(choosePool(pools, need, new Set(['ok']))).toBeUndefined();
  });

  it('of two candidates prefers the one with more room left in its scarcest dimension', () => {
    const roomy = pool('roomy', [1000, 10_000, 1000]);
    const tight = pool('tight', [1000, 3500, 1000]);
    const sequence = [0, 0.99];
    expect(choosePool([roomy, tight], need, new Set(), () => sequence.shift()!)?.poolId).toBe('roomy');
  });
});
