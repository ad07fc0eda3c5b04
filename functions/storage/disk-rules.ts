import { DISK_LIMITS, type DiskPerformance } from '#events/disks.ts';
import { ConflictError, ValidationError } from '../core/errors.ts';

/**
 * The gp3 ratio rules, each violation named: more IOPS than the size allows, or more throughput
 * than the IOPS allow. Ranges are checked by the request schemas; these tie the three together.
 */
export function assertDiskRules(disk: DiskPerformance, where = 'body'): void {
  const maxIops = Math.max(DISK_LIMITS.baselineIops, Math.min(DISK_LIMITS.maxIops, disk.sizeGiB * DISK_LIMITS.maxIopsPerGiB));
  if (disk.iops > maxIops) {
    throw new ValidationError(
      `${where}.iops: rule iops-per-gib: at most ${DISK_LIMITS.maxIopsPerGiB} IOPS per GiB above the ${DISK_LIMITS.baselineIops} baseline, so ${disk.sizeGiB} GiB allows at most ${maxIops} IOPS`,
    );
  }
  const maxThroughput = Math.max(
    DISK_LIMITS.baselineThroughputMiBps,
    Math.min(DISK_LIMITS.maxThroughputMiBps, Math.floor(disk.iops * DISK_LIMITS.maxThroughputPerIops)),
  );
  if (disk.throughputMiBps > maxThroughput) {
    throw new ValidationError(
      `${where}.throughputMiBps: rule throughput-per-iops: at most ${DISK_LIMITS.maxThroughputPerIops} MiB/s per IOPS above the ${DISK_LIMITS.baselineThroughputMiBps} MiB/s baseline, so ${disk.iops} IOPS allow at most ${maxThroughput} MiB/s`,
    );
  }
}

/** Hot-plug slots of a guest (host-agent/vm-runtime/vm-disks.ts): a VM has at most this many disks. */
export const MAX_DISKS_PER_VM = 8;

/**
 * The lowest slot none of a VM's attached disks holds: where the next one goes, and stays while
 * attached (every host that runs the VM plugs it there).
 */
export function freeSlot(attached: readonly ({ slot?: number } | undefined)[]): number {
  const taken = new Set(attached.map((disk) => disk?.slot));
  const slot = Array.from({ length: MAX_DISKS_PER_VM }, (_, index) => index).find((index) => !taken.has(index));
  if (slot === undefined) throw new ConflictError(`every one of a VM's ${MAX_DISKS_PER_VM} disk slots is taken`);
  return slot;
}
