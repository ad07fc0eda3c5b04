import { z } from 'zod';
import { clientToken, resourceId } from './identifiers.ts';

/**
 * Disk limits, modelled on EBS gp3: size, IOPS and throughput are chosen independently within
 * ranges, and two ratio rules tie them together above the included baseline.
 */
export const DISK_LIMITS = {
  minSizeGiB: 1,
  maxSizeGiB: 16_384,
  baselineIops: 3_000,
  maxIops: 16_000,
  baselineThroughputMiBps: 125,
  maxThroughputMiBps: 1_000,
  /** Provisioned IOPS above the baseline: at most 500 per GiB of size. */
  maxIopsPerGiB: 500,
  /** Provisioned throughput above the baseline: at most 0.25 MiB/s per provisioned IOPS. */
  maxThroughputPerIops: 0.25,
} as const;

const sizeGiB = z.int().min(DISK_LIMITS.minSizeGiB).max(DISK_LIMITS.maxSizeGiB);

/** The ratio rules, which JSON Schema cannot express: said in the descriptions of the bodies they apply to. */
const ratioRules =
  `Above the included baseline, IOPS and throughput follow two ratio rules (refused with 400 naming the rule): ` +
  `rule iops-per-gib, at most ${DISK_LIMITS.maxIopsPerGiB} IOPS per GiB of size (a disk of N GiB allows max(${DISK_LIMITS.baselineIops}, min(${DISK_LIMITS.maxIops}, ${DISK_LIMITS.maxIopsPerGiB}·N)) IOPS); ` +
  `rule throughput-per-iops, at most ${DISK_LIMITS.maxThroughputPerIops} MiB/s per IOPS (I IOPS allow max(${DISK_LIMITS.baselineThroughputMiBps}, min(${DISK_LIMITS.maxThroughputMiBps}, floor(${DISK_LIMITS.maxThroughputPerIops}·I))) MiB/s).`;
const iops = z.int().min(DISK_LIMITS.baselineIops).max(DISK_LIMITS.maxIops);
const throughputMiBps = z.int().min(DISK_LIMITS.baselineThroughputMiBps).max(DISK_LIMITS.maxThroughputMiBps);

export const CreateDiskRequest = z
  .strictObject({
    name: z.string().min(1).max(128),
    /** The project that owns it; the tenant's default project when absent. */
    projectId: resourceId.optional(),
    sizeGiB,
    iops: iops.default(DISK_LIMITS.baselineIops),
    throughputMiBps: throughputMiBps.default(DISK_LIMITS.baselineThroughputMiBps),
    clientToken: clientToken.optional(),
    poolId: resourceId
      .optional()
      .describe(
        'Operators only (scope operator): the storage pool to place the disk in (409 when it lacks room). Tenants do not pick pools: a tenant token that sends one is refused (403); leave it out and placement picks a pool with room.',
      ),
    tenantId: resourceId.optional().describe('Operators only, and required with an operator token: the tenant the disk is created for.'),
  })
  .meta({
    description: `A disk's size, IOPS (default ${DISK_LIMITS.baselineIops}) and throughput (default ${DISK_LIMITS.baselineThroughputMiBps} MiB/s). ${ratioRules}`,
  });
export type CreateDiskRequest = z.infer<typeof CreateDiskRequest>;

/** Any of the three, independently; the ratio rules are checked on the result. */
export const ModifyDiskRequest = z
  .strictObject({ sizeGiB: sizeGiB.optional(), iops: iops.optional(), throughputMiBps: throughputMiBps.optional() })
  .refine(
    (body) => body.sizeGiB !== undefined || body.iops !== undefined || body.throughputMiBps !== undefined,
    'give at least one of sizeGiB, iops, throughputMiBps',
  )
  .meta({
    minProperties: 1,
    description: `At least one of sizeGiB, iops, throughputMiBps; what is left out stays. The size only grows (rule size-grows-only: a smaller sizeGiB than the disk's is refused, 400). The rules apply to the disk as it would be after the change. ${ratioRules}`,
  });
export type ModifyDiskRequest = z.infer<typeof ModifyDiskRequest>;

export const AttachDiskRequest = z.strictObject({ vmId: resourceId });
export type AttachDiskRequest = z.infer<typeof AttachDiskRequest>;

export const RegisterStoragePoolRequest = z.strictObject({
  poolId: resourceId,
  capacityGiB: z.int().min(1).max(100_000_000),
  iops: z.int().min(1).max(1_000_000_000),
  throughputMiBps: z.int().min(1).max(100_000_000),
});
export type RegisterStoragePoolRequest = z.infer<typeof RegisterStoragePoolRequest>;

export interface DiskPerformance {
  sizeGiB: number;
  iops: number;
  throughputMiBps: number;
}
