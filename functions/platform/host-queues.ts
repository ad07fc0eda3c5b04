import { CreateQueueCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { sqs } from './clients.ts';
import { setting } from './env.ts';

/** Messages a host agent fails to apply this many times go to the shared host dead-letter queue. */
const MAX_RECEIVES = 5;

/**
 * Creates (or finds, CreateQueue being idempotent for equal attributes) the queue that carries
 * endpoint updates to one host. Queues are per host so each agent reads only its own traffic.
 */
export async function ensureHostQueue(hostId: string): Promise<string> {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({
      QueueName: `${setting('hostQueuePrefix')}${hostId}`,
      Attributes: {
        SqsManagedSseEnabled: 'true',
        MessageRetentionPeriod: String(4 * 24 * 3600),
        VisibilityTimeout: '30',
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: setting('hostDlqArn'), maxReceiveCount: MAX_RECEIVES }),
      },
    }),
  );
  if (!QueueUrl) throw new Error(`CreateQueue returned no URL for host ${hostId}`);
  return QueueUrl;
}

/** Sends one message (a batch of network messages, as the fan-out packs them) to a host's queue. */
export async function sendToHostQueue(queueUrl: string, body: string): Promise<void> {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
}
