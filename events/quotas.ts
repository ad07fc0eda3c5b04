import { z } from 'zod';
import { resourceId } from './identifiers.ts';

/** What a tenant's quotas limit, in each region: resources it holds at once. */
export const QUOTA_NAMES = ['vms', 'disks', 'diskGiB', 'networks'] as const;
export type QuotaName = (typeof QUOTA_NAMES)[number];
export type QuotaLimits = Record<QuotaName, number>;

/**
 * Limits of a tenant no operator has set (per region, like EC2's quotas): 50 VMs, 100 disks,
 * 10 TiB of disks (10,240 GiB) and 20 networks.
 */
export const DEFAULT_QUOTAS: QuotaLimits = { vms: 50, disks: 100, diskGiB: 10_240, networks: 20 };

const limit = z.int().min(0).max(1_000_000_000);

/**
 * An operator's limits for one tenant: replaces what was set before. A quota left out goes back
 * to its default; a limit below what the tenant holds keeps what it holds and refuses new creates.
 */
export const PutQuotaRequest = z.strictObject({
  vms: limit.optional(),
  disks: limit.optional(),
  diskGiB: limit.optional(),
  networks: limit.optional(),
});
export type PutQuotaRequest = z.infer<typeof PutQuotaRequest>;

export const GetQuotasQuery = z.strictObject({
  /** Operators only, and required with an operator token: the tenant whose quotas to show. */
  tenantId: resourceId.optional(),
});
export type GetQuotasQuery = z.infer<typeof GetQuotasQuery>;
