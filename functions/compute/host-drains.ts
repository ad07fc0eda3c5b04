import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { HostItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { ClientError, ConflictError, NotFoundError } from '../core/errors.ts';
import { getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { getHost, listHosts } from './hosts.ts';
import { OUT_OF_PLACEMENT } from './host-cordons.ts';
import { listVmsOnHost, migrateVm, type VmView } from './vms.ts';

/** What moving VMs off a host needs: the tables, the region, a new pair secret per move, and the fast path. */
export interface DrainDeps {
  table: string;
  livenessTable: string;
  region: string;
  newPairKeyCiphertext: (vmId: string) => Promise<string>;
  /** Tells the hosts that need it of a VM's new endpoint after a move at once. */
  announce: (vm: VmView) => Promise<void>;
}

/** Stuck VMs named in the host's progress: enough to act on, small enough for the item. */
const MAX_STUCK = 50;

/**
 * Starts draining a host: it is cordoned (nothing new goes there) and marked draining since now (or
 * since it already was). With `targetHostId` every VM goes there, for as long as the drain lasts;
 * draining again replaces the target, or drops it.
 */
export async function startDrain(table: string, hostId: string, targetHostId?: string): Promise<HostItem> {
  // As a migration's named target: a host that cannot take the VMs conflicts (409), one that does not exist is not found (404).
  if (targetHostId !== undefined) {
    if (targetHostId === hostId) throw new ConflictError(`targetHostId: is host ${hostId}, the host being drained`);
    if (!(await getItem<HostItem>(table, keys.host(targetHostId)))) throw new ClientError(404, `targetHostId: no host ${targetHostId} is registered`);
  }
  const set = [
    'cordoned = :yes',
    'drainStartedAt = if_not_exists(drainStartedAt, :now)',
    ...(targetHostId !== undefined ? ['drainTargetHostId = :target'] : []),
  ];
  const remove = [...OUT_OF_PLACEMENT, ...(targetHostId === undefined ? ['drainTargetHostId'] : [])];
  try {
    const { Attributes } = await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.host(hostId),
        // Cordoned, it leaves the placement index too (host-cordons.ts).
        UpdateExpression: `SET ${set.join(', ')} REMOVE ${remove.join(', ')}`,
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeValues: { ':yes': true, ':now': new Date().toISOString(), ...(targetHostId !== undefined ? { ':target': targetHostId } : {}) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return Attributes as HostItem;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('host', hostId);
    throw error;
  }
}

/**
 * One pass of a drain: every VM still on the host and not already moving is moved, placement
 * picking where (live when the VM runs a guest and both hosts can, else at once, booted again
 * there). A VM that cannot move now (no host with room, disks on a host that cannot move them
 * live) is recorded with why; the next pass (every minute, or the operator's next drain) tries
 * again. Answers the host as it is after the pass.
 */
export async function driveDrain(deps: DrainDeps, host: Pick<HostItem, 'hostId' | 'drainTargetHostId'>): Promise<HostItem> {
  const { hostId, drainTargetHostId: targetHostId } = host;
  const stuck: { vmId: string; reason: string }[] = [];
  for (const vm of await listVmsOnHost(deps.table, hostId)) {
    if (vm.migration) continue;
    try {
      const moved = await migrateVm(
        deps.table,
        { region: deps.region, livenessTable: deps.livenessTable },
        undefined,
        vm.vmId,
        targetHostId ? { targetHostId } : {},
        deps.newPairKeyCiphertext,
      );
      if (!moved.migration) await deps.announce(moved);
    } catch (error) {
      if (!(error instanceof ClientError)) throw error;
      stuck.push({ vmId: vm.vmId, reason: error.message });
    }
  }
  try {
    const { Attributes } = await dynamodb.send(
      new UpdateCommand({
        TableName: deps.table,
        Key: keys.host(hostId),
        UpdateExpression: 'SET drainStuck = :stuck',
        // Only while it drains: an uncordon meanwhile ended it.
        ConditionExpression: 'attribute_exists(drainStartedAt)',
        ExpressionAttributeValues: { ':stuck': stuck.slice(0, MAX_STUCK) },
        ReturnValues: 'ALL_NEW',
      }),
    );
    return Attributes as HostItem;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    return getHost(deps.table, hostId);
  }
}

/** Every host of the region being drained that still has VMs on it. */
export async function drainingHosts(table: string, region: string): Promise<HostItem[]> {
  return (await listHosts(table)).filter(
    (host) => host.drainStartedAt !== undefined && host.vmCount > 0 && (host.region === undefined || host.region === region),
  );
}
