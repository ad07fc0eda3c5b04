import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { CopyImageMessage } from '#events/images.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { currentRegion } from '../../platform/region.ts';
import { startsCopyJob, type ImageCopyItem } from '../image-copies.ts';

const imageCopyQueueUrl = setting('imageCopyQueueUrl');
const processor = new BatchProcessor(EventType.DynamoDBStreams);

const itemOf = (image: Record<string, unknown> | undefined) => (image ? (unmarshall(image as Record<string, AttributeValue>) as Partial<ImageCopyItem>) : undefined);

/**
 * Queues a copy job for every copy this region has just started: the stream is the outbox, so a
 * launch that created a copy can never leave it without a job, however it ends.
 */
async function recordHandler(record: DynamoDBRecord): Promise<void> {
  const after = itemOf(record.dynamodb?.NewImage);
  if (!startsCopyJob(itemOf(record.dynamodb?.OldImage), after, currentRegion)) return;
  const message: CopyImageMessage = { imageId: after!.imageId! };
  await sqs.send(new SendMessageCommand({ QueueUrl: imageCopyQueueUrl, MessageBody: JSON.stringify(message) }));
}

export const handler = middy<DynamoDBStreamEvent>().handler((event, context) => processPartialResponse(event, recordHandler, processor, { context }));
