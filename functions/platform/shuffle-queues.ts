import { CreateQueueCommand, DeleteQueueCommand, QueueDoesNotExist, TagQueueCommand, UntagQueueCommand } from '@aws-sdk/client-sqs';
import { SHUFFLE_HOSTS_TAG_KEYS, shuffleHostsTags } from '#events/host-access.ts';
import { sqs } from './clients.ts';
import { setting } from './env.ts';

/**
 * A shuffle worker's inbound queue: records for its partitions, from every worker's host. One
 * queue per worker, tagged with the job's hosts: the only hosts HostAgentPolicy lets use it.
 * SQS-managed encryption, so host agents need no KMS grant; a day's retention bounds what a
 * stuck job keeps.
 */
export async function ensureShuffleQueue(jobId: string, vmId: string, hostIds: readonly string[]): Promise<string> {
  const tags = shuffleHostsTags(hostIds);
  if (!tags) throw new Error(`shuffle job ${jobId}: its hosts' ids do not fit in the queue's tags`);
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${setting('shuffleQueuePrefix')}${jobId}-${vmId}`,
      Attributes: { SqsManagedSseEnabled: 'true', MessageRetentionPeriod: String(24 * 3600), VisibilityTimeout: '60' },
      // HostAgentPolicy lets a host use the queue only if these name it (events/host-access.ts).
      tags,
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

/**
 * Names the job's hosts on a queue again (a worker moved): the new host may use it, the one a
 * worker left no longer may, unless another worker still runs there.
 */
export async function retagShuffleQueue(queueUrl: string, hostIds: readonly string[]): Promise<void> {
  const tags = shuffleHostsTags(hostIds);
  if (!tags) throw new Error(`${queueUrl}: its job's hosts' ids do not fit in the queue's tags`);
  await sqs.send(new TagQueueCommand({ QueueUrl: queueUrl, Tags: tags }));
  const unused = SHUFFLE_HOSTS_TAG_KEYS.filter((key) => !(key in tags));
  if (unused.length > 0) await sqs.send(new UntagQueueCommand({ QueueUrl: queueUrl, TagKeys: unused }));
}
