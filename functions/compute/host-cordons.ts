import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { HostItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { NotFoundError } from '../core/errors.ts';
import { getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import type { IndexedHost } from './hosts.ts';
import { placementIndexUpdate, updateExpression } from './placement.ts';

/**
 * Cordons a host (placement and migrations keep off it) or lets it take VMs again (ending any
 * drain); what runs there stays. A cordoned host also leaves the placement index, so placement
 * does not even read it; uncordoned, it goes back in (if it runs VMs).
 */
export async function setCordon(table: string, region: string, hostId: string, cordoned: boolean): Promise<HostItem> {
  const update = cordoned
    ? { set: ['cordoned = :yes'], remove: [...OUT_OF_PLACEMENT], names: {}, values: { ':yes': true } }
    : await uncordoned(table, region, hostId);
  try {
    const { Attributes } = await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.host(hostId),
        UpdateExpression: updateExpression(update),
        ConditionExpression: 'attribute_exists(pk)',
        ...(Object.keys(update.names).length > 0 ? { ExpressionAttributeNames: update.names } : {}),
        ...(Object.keys(update.values).length > 0 ? { ExpressionAttributeValues: update.values } : {}),
        ReturnValues: 'ALL_NEW',
      }),
    );
    return Attributes as HostItem;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('host', hostId);
    throw error;
  }
}

/** The placement index's attributes: a host without them is not in it. */
export const OUT_OF_PLACEMENT = ['gsi5pk', 'gsi5sk'] as const;

/** Uncordoning also ends a drain (the operator wants the host to take VMs again), and puts the host back in the placement index. */
async function uncordoned(table: string, region: string, hostId: string) {
  const host = await getItem<IndexedHost>(table, keys.host(hostId));
  if (!host) throw new NotFoundError('host', hostId);
  const index = placementIndexUpdate({ ...host, cordoned: false }, host.gsi5pk, host.region ?? region);
  return { ...index, remove: ['cordoned', 'drainStartedAt', 'drainStuck', 'drainTargetHostId', ...index.remove] };
}
