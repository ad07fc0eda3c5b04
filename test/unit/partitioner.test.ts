import { describe, expect, it } from 'vitest';
import { hashKey, workerFor } from '../../host-agent/partitioner.ts';

describe('shuffle partitioner', () => {
  it('hashes keys with FNV-1a', () => {
    expect(hashKey('')).toBe(0x811c9dc5);
    expect(hashKey('a')).toBe(0xe40c292c);
    expect(hashKey('foobar')).toBe(0xbf9cf968);
  });

  it('sends a key to the same worker from every sender, and spreads keys over all workers', () => {
    const job = { partitions: 12, workers: ['vm-a', 'vm-b', 'vm-c'] };
    const counts = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const worker = workerFor(job, `user-${i}`);
      expect(workerFor({ ...job }, `user-${i}`)).toBe(worker);
      counts.set(worker, (counts.get(worker) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(job.workers);
    for (const count of counts.values()) expect(count).toBeGreaterThan(800);
  });
});
