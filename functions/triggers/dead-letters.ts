import { ChangeMessageVisibilityCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSRecord } from 'aws-lambda';
import { deadLetterAttributes, MAX_REASON_LENGTH } from '#events/dead-letters.ts';
import { failureDecision } from './dead-letter-policy.ts';
import { sqs } from '../platform/clients.ts';
import { setting } from '../platform/env.ts';
import { logger } from '../platform/logger.ts';

/** A message that can never succeed (it does not parse, say): it goes to the dead-letter queue at once. */
export class UnprocessableMessageError extends Error {
  constructor(message: string) {
    super(message);
    // Spelt out: bundles are minified, and the name is part of the reason operators read.
    this.name = 'UnprocessableMessageError';
  }
}

/** Where a consumer's failed messages go, and after how many deliveries it gives up on one. */
export interface DeadLetterRoute {
  sourceQueueUrl: string;
  deadLetterQueueUrl: string;
  maxAttempts: number;
}

/** Settles the records a queue consumer failed to handle; the one place retries and dead letters are decided. */
export interface FailureSettler {
  /**
   * Settles a record whose handling failed. On its last attempt, or when it can never succeed, it
   * is sent to the dead-letter queue with the reason and counts as done (the event source mapping
   * deletes it); otherwise its next delivery is delayed by the retry policy and it must be
   * reported as a batch item failure. If the dead-letter queue cannot be reached either, the
   * record is retried, and the queue's own redrive policy still catches it in the end.
   */
  settleFailure(record: SQSRecord, error: unknown): Promise<'dead-lettered' | 'retry'>;
  /** Makes a failed record visible again after `seconds` instead of after the whole visibility timeout. */
  delayRetry(record: SQSRecord, seconds: number): Promise<void>;
}

const reasonOf = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(0, MAX_REASON_LENGTH);

/** Settles failures on `route`'s queues through `client` (the shared SQS client; tests hand in their own). */
export function deadLetters(route: DeadLetterRoute, client: Pick<SQSClient, 'send'> = sqs): FailureSettler {
  async function delayRetry(record: SQSRecord, seconds: number): Promise<void> {
    try {
      await client.send(
        new ChangeMessageVisibilityCommand({ QueueUrl: route.sourceQueueUrl, ReceiptHandle: record.receiptHandle, VisibilityTimeout: seconds }),
      );
    } catch (error) {
      // Then it comes back after the queue's visibility timeout: later, but not lost.
      logger.warn('could not shorten the retry delay', { messageId: record.messageId, error: error as Error });
    }
  }

  async function settleFailure(record: SQSRecord, error: unknown): Promise<'dead-lettered' | 'retry'> {
    const attempts = Number(record.attributes.ApproximateReceiveCount ?? 1);
    const decision = failureDecision(attempts, route.maxAttempts, error instanceof UnprocessableMessageError);
    const reason = reasonOf(error);
    if (decision.action === 'dead-letter') {
      try {
        await client.send(
          new SendMessageCommand({
            QueueUrl: route.deadLetterQueueUrl,
            MessageBody: record.body,
            MessageAttributes: {
              [deadLetterAttributes.reason]: { DataType: 'String', StringValue: reason },
              [deadLetterAttributes.sourceQueueArn]: { DataType: 'String', StringValue: record.eventSourceARN },
              [deadLetterAttributes.attempts]: { DataType: 'Number', StringValue: String(attempts) },
              [deadLetterAttributes.failedAt]: { DataType: 'String', StringValue: new Date().toISOString() },
            },
            // FIFO: the node's group keeps its order; the message id makes a repeated move one message.
            ...(record.attributes.MessageGroupId ? { MessageGroupId: record.attributes.MessageGroupId, MessageDeduplicationId: record.messageId } : {}),
          }),
        );
        logger.error('message moved to the dead-letter queue', { messageId: record.messageId, attempts, reason });
        return 'dead-lettered';
      } catch (sendError) {
        logger.error('could not move a message to the dead-letter queue; it will be retried', {
          messageId: record.messageId,
          reason,
          error: sendError as Error,
        });
        return 'retry';
      }
    }
    logger.warn('message failed; retrying', { messageId: record.messageId, attempts, reason, retryInSeconds: decision.delaySeconds });
    await delayRetry(record, decision.delaySeconds);
    return 'retry';
  }

  return { settleFailure, delayRetry };
}

/**
 * The settler for this function's own queue, from the settings the stack gives every function
 * that consumes a queue (WorkQueue.consumedBy in cdk/constructs/work-queue.ts). Called at cold start: a missing setting fails
 * the first invocation, not the first failed message.
 */
export function deadLettersFromEnvironment(): FailureSettler {
  return deadLetters({
    sourceQueueUrl: setting('sourceQueueUrl'),
    deadLetterQueueUrl: setting('deadLetterQueueUrl'),
    maxAttempts: Number(setting('maxAttempts')),
  });
}
