import type { TransactItem } from '../core/store.ts';
import { ConflictError } from '../core/errors.ts';
import { indexKeys, keys } from '../core/table-keys.ts';
import type { HostItem } from '#events/records.ts';
import { cannotRunVmsError, getHost } from './hosts.ts';

/** Membership bookkeeping: the count of the network's VMs on a host, and an epoch bumped on every change. */
export function memberDelta(table: string, networkId: string, hostId: string, delta: 1 | -1): TransactItem {
  return {
    Update: {
      TableName: table,
      Key: keys.member(networkId, hostId),
      UpdateExpression: 'ADD vmCount :delta, epoch :one SET kind = :kind, networkId = :net, hostId = :host, gsi2pk = :gsi2pk, gsi2sk = :net',
      ExpressionAttributeValues: {
        ':delta': delta,
        ':one': 1,
        ':kind': 'member',
        ':net': networkId,
        ':host': hostId,
        ':gsi2pk': indexKeys.networksOfHost(hostId),
      },
    },
  };
}

/**
 * A host's VM count moved by one, and its free capacity in the placement index with it (gsi5sk,
 * `capacity - vmCount`: see placement.ts), in the same write, so the index never disagrees with the
 * count it was written with. On a host out of the index (it runs no VMs) the sort key moves too,
 * unseen: being indexed again sets it afresh from the count.
 */
export function hostCountDelta(table: string, hostId: string, delta: 1 | -1): TransactItem {
  return {
    Update: {
      TableName: table,
      Key: keys.host(hostId),
      UpdateExpression: 'ADD vmCount :delta, gsi5sk :free',
      // Adding needs room, on a host that runs VMs (one that registered `none` meanwhile is refused); removing never does.
      ConditionExpression: delta > 0 ? 'vmCount < #capacity AND (attribute_not_exists(vmRuntime) OR vmRuntime <> :none)' : 'attribute_exists(pk)',
      ...(delta > 0 ? { ExpressionAttributeNames: { '#capacity': 'capacity' } } : {}),
      ExpressionAttributeValues: { ':delta': delta, ':free': -delta, ...(delta > 0 ? { ':none': 'none' } : {}) },
    },
  };
}

/** Why a named host's place was refused in the transaction: it filled up, or it registered that it runs no VMs. */
export async function refusedHostError(table: string, hostId: string, field: 'hostId' | 'targetHostId'): Promise<ConflictError> {
  const host = await getHost(table, hostId);
  return cannotRunVmsError(host, field) ?? fullHostError(host, field);
}

/** A host without room, with its count: an operator sees at once whether it is full or its capacity is small. */
export function fullHostError(host: Pick<HostItem, 'hostId' | 'vmCount' | 'capacity'>, field: 'hostId' | 'targetHostId'): ConflictError {
  return new ConflictError(`${field}: host ${host.hostId} is full (${host.vmCount} of ${host.capacity} VMs)`);
}
