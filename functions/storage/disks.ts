import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { CreateDiskRequest, DiskPerformance, ModifyDiskRequest } from '#events/disks.ts';
import { dynamodb } from '../platform/clients.ts';
import { assertDiskRules, freeSlot, MAX_DISKS_PER_VM } from './disk-rules.ts';
import { ClientError, ConflictError, InUseError, NotFoundError, ValidationError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { queryPage } from '../core/pagination.ts';
import { choosePool, listStoragePools, poolDelta } from './storage-pools.ts';
import { backoff, cancellationCodes, getItem, type TransactItem } from '../core/store.ts';
import { createOnce, throwIfClaimLost } from '../core/client-tokens.ts';
import { indexes, indexKeys, keys, withoutTableKeys } from '../core/table-keys.ts';
import { getVm } from '../compute/vms.ts';
import { nodeAttributes, projectGuard, projectGuardError } from '../tenancy/projects.ts';
import { getTenantItem } from '../core/access.ts';
import { assertHomeRegion, inRegion } from '../core/regions.ts';
import { quotaCharge, quotaRelease } from '../tenancy/quotas.ts';

export interface DiskItem extends DiskPerformance {
  kind: 'disk';
  diskId: string;
  tenantId: string;
  projectId: string;
  name: string;
  poolId: string;
  /** The region of its pool: the disk changes only through that region's control plane. */
  region?: string;
  state: 'available' | 'attached';
  attachedTo?: string;
  /**
   * The host whose pool folder holds the disk's file: that of the VM it was first attached to. A
   * disk's data does not move between hosts, so it attaches only to VMs there; none: never attached.
   */
  hostId?: string;
  /**
   * Its slot in the VM it is attached to (0–7: the PCI address the guest sees it at), chosen at
   * attach and kept while attached, so every host that runs the VM plugs it in the same place: a
   * guest moved live finds its devices where they were.
   */
  slot?: number;
  /** Grows on every change, so concurrent modifications cannot both apply to the same base. */
  revision: number;
  createdAt: string;
  updatedAt: string;
}

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type DiskView = z.infer<typeof responses.Disk>;

export const toDiskView = ({ kind: _kind, revision: _revision, ...view }: DiskItem): DiskView => withoutTableKeys(view);

const MAX_ATTEMPTS = 20;

/**
 * Creates a disk on a pool with room in all three dimensions. The pool's free amounts are taken
 * in the same transaction as the disk is written, conditionally, so racing creates never
 * oversubscribe a pool; a lost race retries elsewhere with a fresh read.
 */
export async function createDisk(table: string, region: string, tenantId: string, request: CreateDiskRequest): Promise<DiskView> {
  return createOnce(
    { table, tenantId, operation: 'createDisk', request },
    async (diskId) => toDiskView(await getDisk(table, tenantId, diskId)),
    (claim) => placeDisk(table, region, tenantId, request, claim),
  );
}

async function placeDisk(
  table: string,
  region: string,
  tenantId: string,
  request: CreateDiskRequest,
  claim: (diskId: string) => TransactItem[],
): Promise<DiskView> {
  const need = { sizeGiB: request.sizeGiB, iops: request.iops, throughputMiBps: request.throughputMiBps };
  assertDiskRules(need);
  const diskId = newId('disk');
  const guard = projectGuard(table, tenantId, request.projectId);
  const lostRaces = new Set<string>();
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const inRegionPools = (await listStoragePools(table)).filter((candidate) => inRegion(candidate, region));
    // An operator's pool, or any for placement to pick from.
    const pools = request.poolId === undefined ? inRegionPools : inRegionPools.filter((candidate) => candidate.poolId === request.poolId);
    if (request.poolId !== undefined && pools.length === 0) throw new NotFoundError('storage pool', `${request.poolId} in ${region}`);
    // Pools that just lost a race are tried last, not never.
    const pool = choosePool(pools, need, lostRaces) ?? choosePool(pools, need, new Set());
    const wanted = `${need.sizeGiB} GiB, ${need.iops} IOPS and ${need.throughputMiBps} MiB/s free`;
    if (!pool)
      throw new ConflictError(
        request.poolId === undefined
          ? `no storage pool in ${region} has ${wanted}: ask for less, or have an operator register a pool (POST /storage-pools)`
          : `pool ${request.poolId} has not ${wanted}: ask for less, or leave poolId out for placement to pick a pool`,
      );
    const now = new Date().toISOString();
    const disk: DiskItem & Record<string, unknown> = {
      ...keys.disk(diskId),
      ...nodeAttributes(guard.projectId, 'disk', diskId),
      kind: 'disk',
      diskId,
      tenantId,
      name: request.name,
      ...need,
      poolId: pool.poolId,
      region,
      state: 'available',
      revision: 1,
      createdAt: now,
      updatedAt: now,
      gsi1pk: indexKeys.disksOfTenant(tenantId),
      gsi1sk: diskId,
    };
    // The tenant's disk and GiB quotas, taken in the same transaction (read afresh each attempt).
    const quota = await quotaCharge(table, tenantId, region, { disks: 1, diskGiB: need.sizeGiB });
    const claimed = claim(diskId);
    try {
      await dynamodb.send(
        new TransactWriteCommand({
          TransactItems: [
            poolDelta(table, pool.poolId, need),
            { Put: { TableName: table, Item: disk, ConditionExpression: 'attribute_not_exists(pk)' } },
            guard.item,
            ...quota.items,
            ...claimed,
          ],
        }),
      );
      return toDiskView(disk);
    } catch (error) {
      const codes = cancellationCodes(error);
      if (!codes) throw error;
      throwIfClaimLost(codes, claimed);
      await quota.refusal(codes, 3);
      if (codes[2] === 'ConditionalCheckFailed') throw await projectGuardError(table, tenantId, guard.projectId);
      // The listing was stale or another create took the room: try again without this pool, then with it.
      lostRaces.add(pool.poolId);
      await backoff(attempt);
    }
  }
  throw new ClientError(503, 'storage pools are contended by concurrent requests; retry');
}

/** A tenant's disk; another tenant's is as unknown as one that does not exist. */
export async function getDisk(table: string, tenantId: string, diskId: string): Promise<DiskItem> {
  return getTenantItem<DiskItem>(table, keys.disk(diskId), tenantId, 'disk', diskId);
}

export async function listDisks(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<DiskItem>(table, { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.disksOfTenant(tenantId) }, limit, nextToken);
  return { disks: page.items.map(toDiskView), nextToken: page.nextToken };
}

/**
 * Changes size, IOPS and throughput independently, on the disk's pool. Size only grows. The pool
 * gives or takes the difference in the same transaction; a pool without room for an increase is a 409.
 */
export async function modifyDisk(table: string, region: string, tenantId: string, diskId: string, request: ModifyDiskRequest): Promise<DiskView> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const disk = assertHomeRegion(await getDisk(table, tenantId, diskId), region, `disk ${diskId}`);
    const wanted = {
      sizeGiB: request.sizeGiB ?? disk.sizeGiB,
      iops: request.iops ?? disk.iops,
      throughputMiBps: request.throughputMiBps ?? disk.throughputMiBps,
    };
    if (wanted.sizeGiB < disk.sizeGiB) throw new ValidationError(`body.sizeGiB: rule size-grows-only: a disk cannot shrink below its ${disk.sizeGiB} GiB`);
    assertDiskRules(wanted);
    const delta = { sizeGiB: wanted.sizeGiB - disk.sizeGiB, iops: wanted.iops - disk.iops, throughputMiBps: wanted.throughputMiBps - disk.throughputMiBps };
    const updatedAt = new Date().toISOString();
    // Growing takes the difference from the tenant's GiB quota, in the same transaction.
    const quota = await quotaCharge(table, tenantId, region, { diskGiB: delta.sizeGiB });
    try {
      await dynamodb.send(
        new TransactWriteCommand({
          TransactItems: [
            poolDelta(table, disk.poolId, delta),
            {
              Update: {
                TableName: table,
                Key: keys.disk(diskId),
                UpdateExpression: 'SET sizeGiB = :size, iops = :iops, throughputMiBps = :tp, revision = :next, updatedAt = :now',
                ConditionExpression: 'revision = :revision',
                ExpressionAttributeValues: {
                  ':size': wanted.sizeGiB,
                  ':iops': wanted.iops,
                  ':tp': wanted.throughputMiBps,
                  ':next': disk.revision + 1,
                  ':revision': disk.revision,
                  ':now': updatedAt,
                },
              },
            },
            ...quota.items,
            // An attached disk's VM learns of it: its host changes the limits (or the size) live.
            ...(disk.state === 'attached' && disk.attachedTo
              ? [
                  {
                    Update: {
                      TableName: table,
                      Key: keys.vm(disk.attachedTo),
                      UpdateExpression: 'ADD disksRevision :one',
                      // Not while the VM moves: its destination's copy of the disk is as big as the source's.
                      ConditionExpression: 'attribute_not_exists(migration)',
                      ExpressionAttributeValues: { ':one': 1 },
                    },
                  },
                ]
              : []),
          ],
        }),
      );
      return toDiskView({ ...disk, ...wanted, revision: disk.revision + 1, updatedAt });
    } catch (error) {
      const codes = cancellationCodes(error);
      if (!codes) throw error;
      await quota.refusal(codes, 2);
      if (codes[2 + quota.items.length] === 'ConditionalCheckFailed')
        throw new ConflictError(`vm ${disk.attachedTo} is migrating; change its disk once the migration ended`);
      if (codes[0] === 'ConditionalCheckFailed')
        throw new ConflictError(`pool ${disk.poolId} has no room for this change; the disk keeps its current performance`);
      await backoff(attempt);
    }
  }
  throw new ClientError(503, `disk ${diskId} is contended by concurrent requests; retry`);
}

/** Deletes a detached disk and gives its capacity back to its pool; an attached one is in use. */
export async function deleteDisk(table: string, region: string, tenantId: string, diskId: string): Promise<void> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const disk = assertHomeRegion(await getDisk(table, tenantId, diskId), region, `disk ${diskId}`);
    if (disk.state === 'attached') throw new InUseError(`disk ${diskId} is in use by vm ${disk.attachedTo}; detach it first`);
    try {
      await dynamodb.send(
        new TransactWriteCommand({
          TransactItems: [
            poolDelta(table, disk.poolId, { sizeGiB: -disk.sizeGiB, iops: -disk.iops, throughputMiBps: -disk.throughputMiBps }),
            {
              Delete: {
                TableName: table,
                Key: keys.disk(diskId),
                ConditionExpression: 'revision = :revision AND #state = :available',
                ExpressionAttributeNames: { '#state': 'state' },
                ExpressionAttributeValues: { ':revision': disk.revision, ':available': 'available' },
              },
            },
            // Given back to the tenant's quotas once: the disk's conditional delete is in the same transaction.
            ...quotaRelease(table, tenantId, region, { disks: 1, diskGiB: disk.sizeGiB }),
          ],
        }),
      );
      return;
    } catch (error) {
      const codes = cancellationCodes(error);
      if (!codes) throw error;
      if (codes[1] === 'ConditionalCheckFailed') throw new ConflictError(`disk ${diskId} changed meanwhile; retry`);
      // A concurrent transaction on the pool or on the tenant's quota counter: try again.
      await backoff(attempt);
    }
  }
  throw new ClientError(503, `disk ${diskId} is contended by concurrent requests; retry`);
}

/** Attaches a disk to one of the tenant's VMs; the VM records it too, in the same transaction. */
export async function attachDisk(table: string, region: string, tenantId: string, diskId: string, vmId: string): Promise<DiskView> {
  const disk = assertHomeRegion(await getDisk(table, tenantId, diskId), region, `disk ${diskId}`);
  const vm = await getVm(table, tenantId, vmId);
  if (!inRegion(vm, region)) throw new ConflictError(`vmId: vm ${vmId} is in ${vm.region}; a disk attaches to VMs of its own region`);
  if (disk.projectId !== vm.projectId) throw new ConflictError(`disk ${diskId} belongs to project ${disk.projectId}, vm ${vmId} to ${vm.projectId}`);
  if (disk.state === 'attached') throw new ConflictError(`disk ${diskId} is already attached to vm ${disk.attachedTo}`);
  if (disk.hostId && disk.hostId !== vm.hostId)
    throw new ConflictError(`vmId: rule disk-stays-on-its-host: disk ${diskId}'s data is on host ${disk.hostId}, vm ${vmId} runs on ${vm.hostId}`);
  if ((vm.diskIds?.size ?? 0) >= MAX_DISKS_PER_VM) throw new ConflictError(`vmId: vm ${vmId} has ${MAX_DISKS_PER_VM} disks attached, the most a VM has`);
  if (vm.migration) throw new ConflictError(`vmId: vm ${vmId} is migrating (${vm.migration.phase}); attach the disk once it ended`);
  const attached = [...(vm.diskIds ?? [])].sort();
  const slot = freeSlot(await Promise.all(attached.map((id) => getItem<DiskItem>(table, keys.disk(id)))));
  const updatedAt = new Date().toISOString();
  try {
    await dynamodb.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: table,
              Key: keys.disk(diskId),
              UpdateExpression: 'SET #state = :attached, attachedTo = :vm, hostId = :host, slot = :slot, revision = :next, updatedAt = :now',
              ConditionExpression: 'revision = :revision AND #state = :available',
              ExpressionAttributeNames: { '#state': 'state' },
              ExpressionAttributeValues: {
                ':attached': 'attached',
                ':available': 'available',
                ':vm': vmId,
                ':host': vm.hostId,
                ':slot': slot,
                ':next': disk.revision + 1,
                ':revision': disk.revision,
                ':now': updatedAt,
              },
            },
          },
          {
            Update: {
              TableName: table,
              Key: keys.vm(vmId),
              UpdateExpression: 'ADD diskIds :disk',
              // Still on the host read above (the disk's data is there), not moving, and with the disks
              // read above (so the slot chosen from them is still free).
              ConditionExpression: `tenantId = :tenant AND hostId = :host AND attribute_not_exists(migration) AND ${attached.length > 0 ? 'diskIds = :attached' : 'attribute_not_exists(diskIds)'}`,
              ExpressionAttributeValues: {
                ':disk': new Set([diskId]),
                ':tenant': tenantId,
                ':host': vm.hostId,
                ...(attached.length > 0 ? { ':attached': new Set(attached) } : {}),
              },
            },
          },
        ],
      }),
    );
  } catch (error) {
    const codes = cancellationCodes(error);
    if (codes?.[1] === 'ConditionalCheckFailed') {
      // Another tenant's VM is as unknown as a missing one; one of the tenant's that moved or filled up meanwhile: retry.
      const again = await getVm(table, tenantId, vmId);
      if (again.migration) throw new ConflictError(`vmId: vm ${vmId} is migrating (${again.migration.phase}); attach the disk once it ended`);
      throw new ConflictError(`vm ${again.vmId} changed meanwhile (moved, or another disk attached); retry`);
    }
    if (codes?.[0] === 'ConditionalCheckFailed') throw new ConflictError(`disk ${diskId} changed meanwhile (attached elsewhere?); retry`);
    throw error;
  }
  return toDiskView({ ...disk, state: 'attached', attachedTo: vmId, hostId: vm.hostId, slot, revision: disk.revision + 1, updatedAt });
}

export async function detachDisk(table: string, region: string, tenantId: string, diskId: string): Promise<DiskView> {
  const disk = assertHomeRegion(await getDisk(table, tenantId, diskId), region, `disk ${diskId}`);
  if (disk.state !== 'attached' || !disk.attachedTo) throw new ConflictError(`disk ${diskId} is not attached`);
  const updatedAt = new Date().toISOString();
  try {
    await dynamodb.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            Update: {
              TableName: table,
              Key: keys.disk(diskId),
              UpdateExpression: 'SET #state = :available, revision = :next, updatedAt = :now REMOVE attachedTo, slot',
              ConditionExpression: 'revision = :revision',
              ExpressionAttributeNames: { '#state': 'state' },
              ExpressionAttributeValues: { ':available': 'available', ':next': disk.revision + 1, ':revision': disk.revision, ':now': updatedAt },
            },
          },
          {
            Update: {
              TableName: table,
              Key: keys.vm(disk.attachedTo),
              UpdateExpression: 'DELETE diskIds :disk',
              // Not while the VM moves: its destination copies the disks it had when the move began.
              ConditionExpression: 'attribute_not_exists(migration)',
              ExpressionAttributeValues: { ':disk': new Set([diskId]) },
            },
          },
        ],
      }),
    );
  } catch (error) {
    const codes = cancellationCodes(error);
    if (codes?.[1] === 'ConditionalCheckFailed') throw new ConflictError(`vm ${disk.attachedTo} is migrating; detach the disk once it ended`);
    if (codes) throw new ConflictError(`disk ${diskId} changed meanwhile; retry`);
    throw error;
  }
  const { attachedTo: _attachedTo, slot: _slot, ...detached } = disk;
  return toDiskView({ ...detached, state: 'available', revision: disk.revision + 1, updatedAt });
}
