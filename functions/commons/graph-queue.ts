import { createHash } from 'node:crypto';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import type { Outgoing } from '../domain/resource-graph.ts';
import { sqs } from './clients.ts';
import { requiredEnv } from './env.ts';

/**
 * Sends graph messages to the FIFO graph queue: the node id is the message group (one node's
 * messages are handled one at a time, in order), and the deduplication id names the message and
 * its sender, so a handler that is redelivered and sends again does not send twice.
 */
export async function sendGraphMessages(messages: Outgoing[]): Promise<void> {
  const queueUrl = requiredEnv('GRAPH_QUEUE_URL');
  for (let i = 0; i < messages.length; i += 10) {
    const batch = messages.slice(i, i + 10);
    const { Failed = [] } = await sqs.send(
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
