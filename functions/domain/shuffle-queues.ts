import { CreateQueueCommand, DeleteQueueCommand, QueueDoesNotExist } from '@aws-sdk/client-sqs';
import { sqs } from '../commons/clients.ts';
import { requiredEnv } from '../commons/env.ts';

/**
 * A shuffle worker's inbound queue: records for its partitions, from every worker's host. One
 * queue per worker so its host reads only its own; SQS-managed encryption, so host agents need
 * no KMS grant; a day's retention bounds what a stuck job keeps.
 */
export async function ensureShuffleQueue(jobId: string, vmId: string): Promise<string> {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${requiredEnv('SHUFFLE_QUEUE_PREFIX')}${jobId}-${vmId}`,
      Attributes: { SqsManagedSseEnabled: 'true', MessageRetentionPeriod: String(24 * 3600), VisibilityTimeout: '60' },
    }),
  );
  if (!QueueUrl) throw new Error(`CreateQueue returned no URL for shuffle job ${jobId}, worker ${vmId}`);
  return QueueUrl;
}

export async function deleteShuffleQueue(queueUrl: string): Promise<void> {
  try {
    await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
  } catch (error) {
    if (!(error instanceof QueueDoesNotExist)) throw error;
  }
}
