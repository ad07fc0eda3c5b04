import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { CopyImageMessage } from '#events/images.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { UnprocessableMessageError, withDeadLetters } from '../../triggers/dead-letters.ts';
import { parseJsonOrUndefined } from '../../triggers/json.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { copyImage } from '../image-copies.ts';

const imageCopyQueueUrl = setting('imageCopyQueueUrl');
const processor = new BatchProcessor(EventType.SQS);

async function recordHandler(record: SQSRecord): Promise<void> {
  const parsed = CopyImageMessage.safeParse(parseJsonOrUndefined(record.body));
  if (!parsed.success) throw new UnprocessableMessageError(`malformed copy message: ${parsed.error.issues[0]?.message}`);
  await copyImage(tableName, currentRegion, parsed.data.imageId, {
    // A retry is a new message after a delay, so this one is done and the copy's attempts count tries.
    scheduleRetry: async (delaySeconds) => {
      await sqs.send(new SendMessageCommand({ QueueUrl: imageCopyQueueUrl, MessageBody: record.body, DelaySeconds: delaySeconds }));
    },
  });
}

/** Copies images from other regions into this one, one per invocation; see copyImage. */
export const handler = middy<SQSEvent>().handler((event, context) => processPartialResponse(event, withDeadLetters(recordHandler), processor, { context }));
