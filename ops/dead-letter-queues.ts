import {
  GetQueueAttributesCommand,
  ListDeadLetterSourceQueuesCommand,
  ListMessageMoveTasksCommand,
  ListQueuesCommand,
  ReceiveMessageCommand,
  StartMessageMoveTaskCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { deadLetterAttributes } from '#events/dead-letters.ts';
import { deadLetterQueuePrefix, deploymentFromEnvironment } from '#events/naming.ts';

export interface DeadLetterQueue {
  /** The short name: `fan-out`, `graph.fifo`, `host`, … */
  name: string;
  url: string;
  arn: string;
  messages: number;
  /** The queues whose redrive policy names this one: the first thousand (there may be many more for `host`). */
  sourceUrls: string[];
  /** More sources than `sourceUrls` lists. */
  moreSources: boolean;
}

export interface DeadLetter {
  messageId: string;
  body: string;
  reason?: string;
  sourceQueueArn?: string;
  attempts?: number;
  failedAt?: string;
  receiveCount: number;
}

/** A region's dead-letter queues (of the deployment STRATOPLANE_DEPLOYMENT names), found by their common name prefix. */
export async function listDeadLetterQueues(sqs: SQSClient, region: string): Promise<DeadLetterQueue[]> {
  const prefix = deadLetterQueuePrefix(region, deploymentFromEnvironment());
  const urls: string[] = [];
  let NextToken: string | undefined;
  do {
    const page = await sqs.send(new ListQueuesCommand({ QueueNamePrefix: prefix, MaxResults: 1000, NextToken }));
    urls.push(...(page.QueueUrls ?? []));
    NextToken = page.NextToken;
  } while (NextToken);
  return Promise.all(
    urls.sort().map(async (url) => {
      const { Attributes = {} } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn', 'ApproximateNumberOfMessages'] }));
      // One page: enough to tell one source (a work queue's) from many (the host queues').
      const { queueUrls = [], NextToken } = await sqs.send(new ListDeadLetterSourceQueuesCommand({ QueueUrl: url, MaxResults: 1000 }));
      const arn = Attributes.QueueArn!;
      return {
        name: arn.split(':').pop()!.slice(prefix.length),
        url,
        arn,
        messages: Number(Attributes.ApproximateNumberOfMessages ?? 0),
        sourceUrls: queueUrls,
        moreSources: NextToken !== undefined,
      };
    }),
  );
}

/** One dead-letter queue by its short or full name; the error lists the names there are. */
export async function findDeadLetterQueue(sqs: SQSClient, region: string, name: string): Promise<DeadLetterQueue> {
  const queues = await listDeadLetterQueues(sqs, region);
  const found = queues.find((queue) => queue.name === name || `${deadLetterQueuePrefix(region, deploymentFromEnvironment())}${queue.name}` === name);
  if (!found)
    throw new Error(
      `no dead-letter queue ${name} in ${region}; there are: ${queues.map((queue) => queue.name).join(', ') || 'none (is the stack deployed there?)'}`,
    );
  return found;
}

/**
 * Up to `max` messages of a dead-letter queue, left in it: each is received with a visibility
 * timeout of 0, so it is at once visible again to the next reader or a redrive.
 */
export async function peekDeadLetters(sqs: SQSClient, queue: DeadLetterQueue, max: number): Promise<DeadLetter[]> {
  const seen = new Map<string, DeadLetter>();
  for (let round = 0; round < 5 && seen.size < max; round++) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queue.url,
        MaxNumberOfMessages: Math.min(10, max - seen.size),
        VisibilityTimeout: 0,
        WaitTimeSeconds: round === 0 ? 1 : 0,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['ApproximateReceiveCount'],
      }),
    );
    if (Messages.length === 0) break;
    for (const message of Messages) {
      const attribute = (name: string) => message.MessageAttributes?.[name]?.StringValue;
      seen.set(message.MessageId!, {
        messageId: message.MessageId!,
        body: message.Body ?? '',
        reason: attribute(deadLetterAttributes.reason),
        sourceQueueArn: attribute(deadLetterAttributes.sourceQueueArn),
        attempts: attribute(deadLetterAttributes.attempts) ? Number(attribute(deadLetterAttributes.attempts)) : undefined,
        failedAt: attribute(deadLetterAttributes.failedAt),
        receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 0),
      });
    }
  }
  return [...seen.values()].slice(0, max);
}

export interface RedriveResult {
  status: string;
  moved: number;
  destinationArn?: string;
  failureReason?: string;
}

/**
 * Moves a dead-letter queue's messages back with SQS's own message move task. A queue with one
 * source (every work queue's) names it as the destination, which also covers messages its handler
 * moved there itself; one with many (host queues) lets SQS return each message where it came from.
 */
export async function redriveDeadLetters(
  sqs: SQSClient,
  queue: DeadLetterQueue,
  options: { ratePerSecond?: number; timeoutMs?: number; onProgress?: (moved: number, toMove: number) => void } = {},
): Promise<RedriveResult> {
  const destinationArn = queue.sourceUrls.length === 1 && !queue.moreSources ? await arnOf(sqs, queue.sourceUrls[0]!) : undefined;
  if (!destinationArn && queue.sourceUrls.length === 0)
    throw new Error(`${queue.name}: no queue names it as its dead-letter queue, so there is nowhere to redrive to`);
  const { TaskHandle } = await sqs.send(
    new StartMessageMoveTaskCommand({ SourceArn: queue.arn, DestinationArn: destinationArn, MaxNumberOfMessagesPerSecond: options.ratePerSecond }),
  );
  const deadline = Date.now() + (options.timeoutMs ?? 10 * 60_000);
  while (Date.now() < deadline) {
    const { Results = [] } = await sqs.send(new ListMessageMoveTasksCommand({ SourceArn: queue.arn, MaxResults: 10 }));
    const task = Results.find((result) => result.TaskHandle === TaskHandle) ?? Results[0];
    if (task && task.Status !== 'RUNNING') {
      return { status: task.Status!, moved: task.ApproximateNumberOfMessagesMoved ?? 0, destinationArn, failureReason: task.FailureReason };
    }
    if (task) options.onProgress?.(task.ApproximateNumberOfMessagesMoved ?? 0, task.ApproximateNumberOfMessagesToMove ?? 0);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`${queue.name}: the move task was still running after ${(options.timeoutMs ?? 600_000) / 1000} s (it goes on; see ListMessageMoveTasks)`);
}

async function arnOf(sqs: SQSClient, queueUrl: string): Promise<string> {
  const { Attributes = {} } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }));
  return Attributes.QueueArn!;
}
