import { createHash } from 'node:crypto';
import { GetQueueUrlCommand, SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { graphQueueName } from '#events/naming.ts';
import type { OutgoingGraphMessage } from '#events/projects.ts';
import { sqs } from './clients.ts';
import { setting } from './env.ts';
import { currentRegion } from './region.ts';

/** Other regions' graph queues, found by their fixed names once per container. */
const otherRegions = new Map<string, Promise<{ client: SQSClient; queueUrl: string }>>();

function graphQueueIn(region: string): Promise<{ client: SQSClient; queueUrl: string }> {
  if (region === currentRegion) return Promise.resolve({ client: sqs, queueUrl: setting('graphQueueUrl') });
  let found = otherRegions.get(region);
  if (!found) {
    const client = new SQSClient({ region });
    found = client
      .send(new GetQueueUrlCommand({ QueueName: graphQueueName(region, setting('deployment')) }))
      .then(({ QueueUrl }) => ({ client, queueUrl: QueueUrl! }));
    otherRegions.set(region, found);
    found.catch(() => otherRegions.delete(region));
  }
  return found;
}

/**
 * Sends graph messages to a region's FIFO graph queue (this region's unless told): the node id
 * is the message group (one node's messages are handled one at a time, in order), and the
 * deduplication id names the message and its sender, so a handler that is redelivered and sends
 * again does not send twice.
 */
export async function sendGraphMessages(messages: OutgoingGraphMessage[], region = currentRegion): Promise<void> {
  const { client, queueUrl } = await graphQueueIn(region);
  for (let i = 0; i < messages.length; i += 10) {
    const batch = messages.slice(i, i + 10);
    const { Failed = [] } = await client.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: batch.map(({ message, from }, index) => ({
          Id: String(index),
          MessageBody: JSON.stringify(message),
          MessageGroupId: message.nodeId,
          MessageDeduplicationId: createHash('sha256').update(`${message.action}:${message.kind}:${message.nodeId}:from:${from}`).digest('hex'),
        })),
      }),
    );
    if (Failed.length > 0) throw new Error(`graph queue refused ${Failed.length} message(s): ${Failed[0]?.Code} ${Failed[0]?.Message}`);
  }
}
