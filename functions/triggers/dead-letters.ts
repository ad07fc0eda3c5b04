import { ChangeMessageVisibilityCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
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

// Set by the stack for every function that consumes a queue (ControlPlaneStack.consume).
const sourceQueueUrl = setting('sourceQueueUrl');
const deadLetterQueueUrl = setting('deadLetterQueueUrl');
const maxAttempts = Number(setting('maxAttempts'));

const reasonOf = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).slice(0, MAX_REASON_LENGTH);

/**
 * Settles a record whose handling failed. On its last attempt, or when it can never succeed, it
 * is sent to the dead-letter queue with the reason and counts as done (the event source mapping
 * deletes it); otherwise its next delivery is delayed by the retry policy and it must be reported
 * as a batch item failure. If the dead-letter queue cannot be reached either, the record is
 * retried, and the queue's own redrive policy still catches it in the end.
 */
export async function settleFailure(record: SQSRecord, error: unknown): Promise<'dead-lettered' | 'retry'> {
  const attempts = Number(record.attributes.ApproximateReceiveCount ?? 1);
  const decision = failureDecision(attempts, maxAttempts, error instanceof UnprocessableMessageError);
  const reason = reasonOf(error);
  if (decision.action === 'dead-letter') {
    try {
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: deadLetterQueueUrl,
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
      logger.error('could not move a message to the dead-letter queue; it will be retried', { messageId: record.messageId, reason, error: sendError as Error });
      return 'retry';
    }
  }
  logger.warn('message failed; retrying', { messageId: record.messageId, attempts, reason, retryInSeconds: decision.delaySeconds });
  await delayRetry(record, decision.delaySeconds);
  return 'retry';
}

/** Makes a failed record visible again after `seconds` instead of after the whole visibility timeout. */
export async function delayRetry(record: SQSRecord, seconds: number): Promise<void> {
  try {
    await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: sourceQueueUrl, ReceiptHandle: record.receiptHandle, VisibilityTimeout: seconds }));
  } catch (error) {
    // Then it comes back after the queue's visibility timeout: later, but not lost.
    logger.warn('could not shorten the retry delay', { messageId: record.messageId, error: error as Error });
  }
}

/** A record handler that settles its own failures: it throws only for records to be retried. */
export function withDeadLetters(handle: (record: SQSRecord) => Promise<void>): (record: SQSRecord) => Promise<void> {
  return async (record) => {
    try {
      await handle(record);
    } catch (error) {
      if ((await settleFailure(record, error)) === 'retry') throw error;
    }
  };
}
