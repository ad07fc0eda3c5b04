import type { HostShuffleJob } from '#events/shuffle.ts';

/** FNV-1a (32 bit) of the key's UTF-8 bytes: cheap, stable across processes and machines. */
export function hashKey(key: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** The partition of a key, and the worker that partition belongs to: the same for every sender. */
export function workerFor(job: Pick<HostShuffleJob, 'partitions' | 'workers'>, key: string): string {
  const partition = hashKey(key) % job.partitions;
  return job.workers[partition % job.workers.length]!;
}
