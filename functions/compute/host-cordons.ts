import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { HostItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { NotFoundError } from '../core/errors.ts';
import { keys } from '../core/table-keys.ts';

/** Cordons a host (placement and migrations keep off it) or lets it take VMs again (ending any drain); what runs there stays. */
export async function setCordon(table: string, hostId: string, cordoned: boolean): Promise<HostItem> {
  try {
    const { Attributes } = await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.host(hostId),
        // Uncordoning also ends a drain: the operator wants the host to take VMs again.
        UpdateExpression: cordoned ? 'SET cordoned = :yes' : 'REMOVE cordoned, drainStartedAt, drainStuck',
        ConditionExpression: 'attribute_exists(pk)',
        ...(cordoned ? { ExpressionAttributeValues: { ':yes': true } } : {}),
        ReturnValues: 'ALL_NEW',
      }),
    );
    return Attributes as HostItem;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('host', hostId);
    throw error;
  }
}
