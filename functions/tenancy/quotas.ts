import type { z } from 'zod';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type * as responses from '#events/responses.ts';
import { DEFAULT_QUOTAS, QUOTA_NAMES, type PutQuotaRequest, type QuotaLimits, type QuotaName } from '#events/quotas.ts';
import { dynamodb } from '../platform/clients.ts';
import { ForbiddenError } from '../core/errors.ts';
import { getItem, type TransactItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';

/**
 * Per-tenant quotas. Limits are one global item per tenant (`TENANT#t / QUOTA`), written only by
 * operators, with a `revision` bumped on every change. What a tenant holds is counted per region
 * (`TENANT#t / USAGE#<region>`): VMs, disks and networks are regional, and each region's creates
 * and deletes are the only writes to its counter, so global-table replication never has two
 * regions racing on one counter item.
 *
 * A create takes from its quota inside its own transaction: an `ADD` to the counter on the
 * condition that the counter is at most the limit less what the create takes, plus a check that
 * the limits are still those it read. Concurrent creates at the edge therefore never exceed a
 * limit: DynamoDB serializes transactions on the counter, and each one's condition sees the others.
 * Deletes give back in their own transaction (the one that removes the resource, so exactly once).
 */

export type QuotasView = z.infer<typeof responses.Quotas>;

export interface QuotaLimitsItem extends Partial<QuotaLimits> {
  kind: 'quota-limits';
  tenantId: string;
  revision: number;
  updatedAt: string;
  updatedBy: string;
}

type QuotaUsageItem = Partial<QuotaLimits> & { kind: 'quota-usage'; tenantId: string; region: string };

/** What a create takes from the tenant's quotas (positive amounts). */
export type QuotaNeed = Partial<Record<QuotaName, number>>;

/** A create would take a tenant past a limit: 403 naming the quota, what is held and the limit. */
export class QuotaExceededError extends ForbiddenError {
  constructor(
    readonly quota: QuotaName,
    used: number,
    limit: number,
    asked: number,
  ) {
    super(`quota exceeded: ${quota} ${used} of ${limit}${asked > 1 ? ` (this needs ${asked} more)` : ''}; delete some, or ask an operator to raise it`);
  }
}

export function effectiveLimits(item: Partial<QuotaLimits> | undefined): QuotaLimits {
  return Object.fromEntries(QUOTA_NAMES.map((name) => [name, item?.[name] ?? DEFAULT_QUOTAS[name]])) as QuotaLimits;
}

const readLimits = (table: string, tenantId: string) => getItem<QuotaLimitsItem>(table, keys.quotaLimits(tenantId));
const readUsage = (table: string, tenantId: string, region: string) => getItem<QuotaUsageItem>(table, keys.quotaUsage(tenantId, region));

/**
 * What a create adds to its transaction to take `need` from the tenant's quotas in `region`, and
 * how to read that transaction's cancellation. Refuses at once (QuotaExceededError) what no
 * transaction could fit.
 */
export interface QuotaCharge {
  /** Two items: the usage counter's conditional ADD, then the check that the limits did not change. */
  items: TransactItem[];
  /**
   * For a cancelled transaction whose charge items start at `offset`: throws QuotaExceededError
   * when a limit was what refused it; returns otherwise (the caller retries with a fresh charge).
   */
  refusal(codes: readonly string[], offset: number): Promise<void>;
}

export async function quotaCharge(table: string, tenantId: string, region: string, need: QuotaNeed): Promise<QuotaCharge> {
  const limitsItem = await readLimits(table, tenantId);
  const limits = effectiveLimits(limitsItem);
  const taken = QUOTA_NAMES.filter((name) => (need[name] ?? 0) > 0);
  if (taken.length === 0) return { items: [], refusal: async () => {} };
  const over = async () => {
    const used = await readUsage(table, tenantId, region);
    const name = taken.find((candidate) => (used?.[candidate] ?? 0) + need[candidate]! > limits[candidate]);
    return name && new QuotaExceededError(name, used?.[name] ?? 0, limits[name], need[name]!);
  };
  if (taken.some((name) => need[name]! > limits[name])) throw (await over())!;

  const names: Record<string, string> = { '#region': 'region' };
  const values: Record<string, unknown> = { ':kind': 'quota-usage', ':tenant': tenantId, ':region': region };
  const adds: string[] = [];
  const conditions: string[] = [];
  taken.forEach((name, index) => {
    names[`#q${index}`] = name;
    values[`:add${index}`] = need[name];
    values[`:room${index}`] = limits[name] - need[name]!;
    adds.push(`#q${index} :add${index}`);
    conditions.push(`(attribute_not_exists(#q${index}) OR #q${index} <= :room${index})`);
  });
  const items: TransactItem[] = [
    {
      Update: {
        TableName: table,
        Key: keys.quotaUsage(tenantId, region),
        UpdateExpression: `SET kind = :kind, tenantId = :tenant, #region = :region ADD ${adds.join(', ')}`,
        ConditionExpression: conditions.join(' AND '),
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      },
    },
    {
      ConditionCheck: {
        TableName: table,
        Key: keys.quotaLimits(tenantId),
        // The limits are those read above: an operator's change meanwhile makes the create read them again.
        ...(limitsItem
          ? { ConditionExpression: 'revision = :revision', ExpressionAttributeValues: { ':revision': limitsItem.revision } }
          : { ConditionExpression: 'attribute_not_exists(pk)' }),
      },
    },
  ];
  return {
    items,
    async refusal(codes, offset) {
      if (codes[offset] !== 'ConditionalCheckFailed') return;
      const error = await over();
      if (error) throw error;
    },
  };
}

/** What a delete gives back, in the delete's own transaction. */
export function quotaRelease(table: string, tenantId: string, region: string, amounts: QuotaNeed): TransactItem[] {
  const given = QUOTA_NAMES.filter((name) => (amounts[name] ?? 0) > 0);
  if (given.length === 0) return [];
  return [
    {
      Update: {
        TableName: table,
        Key: keys.quotaUsage(tenantId, region),
        UpdateExpression: `SET kind = :kind, tenantId = :tenant, #region = :region ADD ${given.map((_, index) => `#q${index} :give${index}`).join(', ')}`,
        ExpressionAttributeNames: { '#region': 'region', ...Object.fromEntries(given.map((name, index) => [`#q${index}`, name])) },
        ExpressionAttributeValues: {
          ':kind': 'quota-usage',
          ':tenant': tenantId,
          ':region': region,
          ...Object.fromEntries(given.map((name, index) => [`:give${index}`, -amounts[name]!])),
        },
      },
    },
  ];
}

/** A tenant's limits and what it holds in this region. */
export async function getQuotas(table: string, tenantId: string, region: string): Promise<QuotasView> {
  const [limitsItem, usage] = await Promise.all([readLimits(table, tenantId), readUsage(table, tenantId, region)]);
  const limits = effectiveLimits(limitsItem);
  return {
    tenantId,
    region,
    quotas: Object.fromEntries(
      QUOTA_NAMES.map((name) => [name, { limit: limits[name], used: usage?.[name] ?? 0, source: limitsItem?.[name] === undefined ? 'default' : 'operator' }]),
    ) as QuotasView['quotas'],
    ...(limitsItem ? { updatedAt: limitsItem.updatedAt } : {}),
  };
}

/**
 * An operator sets a tenant's limits (the whole set: a quota left out goes back to its default).
 * The revision moves on, so creates that read the old limits check again.
 */
export async function putQuota(table: string, tenantId: string, region: string, request: PutQuotaRequest, operator: string): Promise<QuotasView> {
  const set = QUOTA_NAMES.filter((name) => request[name] !== undefined);
  const unset = QUOTA_NAMES.filter((name) => request[name] === undefined);
  const assignments = ['kind = :kind', 'tenantId = :tenant', 'updatedAt = :now', 'updatedBy = :by', ...set.map((name) => `${name} = :${name}`)];
  await dynamodb.send(
    new UpdateCommand({
      TableName: table,
      Key: keys.quotaLimits(tenantId),
      UpdateExpression: `SET ${assignments.join(', ')} ADD revision :one${unset.length ? ` REMOVE ${unset.join(', ')}` : ''}`,
      ExpressionAttributeValues: {
        ':kind': 'quota-limits',
        ':tenant': tenantId,
        ':now': new Date().toISOString(),
        ':by': operator,
        ':one': 1,
        ...Object.fromEntries(set.map((name) => [`:${name}`, request[name]])),
      },
    }),
  );
  return getQuotas(table, tenantId, region);
}
