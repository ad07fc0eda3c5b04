import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { DiskPerformance, RegisterStoragePoolRequest } from '#events/disks.ts';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError } from '../core/errors.ts';
import { getItem, queryAll } from '../core/store.ts';
import { indexes, indexKeys, keys, withoutTableKeys } from '../core/table-keys.ts';

/**
 * A storage pool's capacity in three dimensions and what is still free of each. Free amounts are
 * stored, not derived, so a placement can be a condition (`freeGiB >= :size AND ...`) on the
 * same update that takes them: a pool can never be oversubscribed, however many creates race.
 */
export interface StoragePoolItem {
  kind: 'storage-pool';
  poolId: string;
  /** The region whose control plane places disks on it. */
  region?: string;
  capacityGiB: number;
  iops: number;
  throughputMiBps: number;
  freeGiB: number;
  freeIops: number;
  freeThroughputMiBps: number;
  createdAt: string;
}

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type StoragePoolView = z.infer<typeof responses.StoragePool>;

const toView = ({ kind: _kind, ...view }: StoragePoolItem): StoragePoolView => withoutTableKeys(view);

/** Registers a pool; the same registration again is a no-op, a different one a 409. */
export async function registerStoragePool(
  table: string,
  region: string,
  request: RegisterStoragePoolRequest,
): Promise<{ pool: StoragePoolView; created: boolean }> {
  const item: StoragePoolItem & Record<string, unknown> = {
    ...keys.storagePool(request.poolId),
    kind: 'storage-pool',
    poolId: request.poolId,
    region,
    capacityGiB: request.capacityGiB,
    iops: request.iops,
    throughputMiBps: request.throughputMiBps,
    freeGiB: request.capacityGiB,
    freeIops: request.iops,
    freeThroughputMiBps: request.throughputMiBps,
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.allStoragePools,
    gsi1sk: request.poolId,
  };
  try {
    await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    return { pool: toView(item), created: true };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    const existing = (await getItem<StoragePoolItem>(table, keys.storagePool(request.poolId)))!;
    if (existing.region !== undefined && existing.region !== region)
      throw new ConflictError(`poolId: pool ${request.poolId} is registered in ${existing.region}`);
    if (existing.capacityGiB !== request.capacityGiB || existing.iops !== request.iops || existing.throughputMiBps !== request.throughputMiBps) {
      throw new ConflictError(`poolId: pool ${request.poolId} is already registered with other capacities`);
    }
    return { pool: toView(existing), created: false };
  }
}

export async function listStoragePools(table: string): Promise<StoragePoolView[]> {
  const pools = await queryAll<StoragePoolItem>({
    TableName: table,
    IndexName: indexes.gsi1,
    KeyConditionExpression: 'gsi1pk = :pk',
    ExpressionAttributeValues: { ':pk': indexKeys.allStoragePools },
  });
  return pools.map(toView);
}

export const fits = (pool: StoragePoolView, need: DiskPerformance) =>
  pool.freeGiB >= need.sizeGiB && pool.freeIops >= need.iops && pool.freeThroughputMiBps >= need.throughputMiBps;

/**
 * Of two random pools that fit, the one with the most room left in its scarcest dimension: spreads
 * load and keeps concurrent creates from all racing for the same pool.
 */
export function choosePool(
  pools: readonly StoragePoolView[],
  need: DiskPerformance,
  exclude: ReadonlySet<string>,
  random: () => number = Math.random,
): StoragePoolView | undefined {
  const open = pools.filter((pool) => !exclude.has(pool.poolId) && fits(pool, need));
  if (open.length === 0) return undefined;
  const room = (pool: StoragePoolView) =>
    Math.min(
      (pool.freeGiB - need.sizeGiB) / pool.capacityGiB,
      (pool.freeIops - need.iops) / pool.iops,
      (pool.freeThroughputMiBps - need.throughputMiBps) / pool.throughputMiBps,
    );
  const a = open[Math.floor(random() * open.length)]!;
  const b = open[Math.floor(random() * open.length)]!;
  return room(a) >= room(b) ? a : b;
}

/** Takes (positive) or gives back (negative) capacity on a pool; taking is conditional on room. */
export function poolDelta(table: string, poolId: string, delta: DiskPerformance) {
  const taking = delta.sizeGiB > 0 || delta.iops > 0 || delta.throughputMiBps > 0;
  const conditions = [
    delta.sizeGiB > 0 ? 'freeGiB >= :gib' : undefined,
    delta.iops > 0 ? 'freeIops >= :iops' : undefined,
    delta.throughputMiBps > 0 ? 'freeThroughputMiBps >= :tp' : undefined,
  ].filter(Boolean);
  return {
    Update: {
      TableName: table,
      Key: keys.storagePool(poolId),
      UpdateExpression: 'ADD freeGiB :minusGib, freeIops :minusIops, freeThroughputMiBps :minusTp',
      ConditionExpression: taking ? conditions.join(' AND ') : 'attribute_exists(pk)',
      ExpressionAttributeValues: {
        ':minusGib': -delta.sizeGiB,
        ':minusIops': -delta.iops,
        ':minusTp': -delta.throughputMiBps,
        ...(delta.sizeGiB > 0 ? { ':gib': delta.sizeGiB } : {}),
        ...(delta.iops > 0 ? { ':iops': delta.iops } : {}),
        ...(delta.throughputMiBps > 0 ? { ':tp': delta.throughputMiBps } : {}),
      },
    },
  };
}
