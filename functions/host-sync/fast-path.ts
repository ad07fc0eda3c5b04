import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { EndpointEntry } from '#events/endpoints.ts';
import type { VmView } from '../compute/vms.ts';
import { dynamodb } from '../platform/clients.ts';
import { logger } from '../platform/logger.ts';
import { keys } from '../core/table-keys.ts';
import { fanOut, type SendToQueue } from './fanout.ts';

/**
 * The fast path for an endpoint change: the function that committed it sends it to the hosts that
 * need it at once, instead of leaving it to the table's stream (a poll, then two function hops).
 * Once every host has it, the slot records so, and the stream's backstop sends it to nobody again
 * (each host would have paid a receive and a delete for nothing); if any send failed, the stream
 * delivers the change to every host, harmlessly again to those that have it (an agent keeps an
 * entry's highest version). A failure here is logged, never the caller's error.
 */
export async function fanOutEndpointNow(table: string, region: string, networkId: string, entry: EndpointEntry, send: SendToQueue): Promise<void> {
  try {
    // Its own change: nobody delivered it before (a replayed create's second delivery is harmless).
    const failed = await fanOut(table, region, [{ id: 'fast-path', change: { kind: 'endpoint', networkId, entry } }], send, false);
    const error = failed.get('fast-path');
    if (error)
      logger.warn('the fast path did not reach every host; the stream will', { networkId, vmId: entry.vmId, version: entry.version, error: error as Error });
    else await recordDelivered(table, networkId, entry);
  } catch (error) {
    logger.warn('the fast path failed; the stream will deliver the change', { networkId, vmId: entry.vmId, error: error as Error });
  }
}

/** A VM's endpoint as the hosts of its network hold it, while it exists. */
export const endpointEntryOf = ({ vmId, ip, hostId, endpoint }: Pick<VmView, 'vmId' | 'ip' | 'hostId' | 'endpoint'>): EndpointEntry => ({
  ip,
  version: endpoint.version,
  state: 'active',
  vmId,
  hostId,
  endpoint: endpoint.address,
});

/** Marks the slot's version delivered, unless the slot moved on meanwhile (the newer version is the stream's to send). */
async function recordDelivered(table: string, networkId: string, entry: EndpointEntry): Promise<void> {
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.slot(networkId, entry.ip),
        UpdateExpression: 'SET deliveredVersion = :version',
        ConditionExpression: 'version = :version',
        ExpressionAttributeValues: { ':version': entry.version },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}
