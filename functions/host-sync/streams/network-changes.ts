import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import middy from '@middy/core';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { MetadataItem } from '#events/records.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { logger } from '../../platform/logger.ts';
import { changesFromItemUpdate } from '../network-changes.ts';

const fanOutQueueUrl = setting('fanOutQueueUrl');
const processor = new BatchProcessor(EventType.DynamoDBStreams);

function imageOf(image: Record<string, unknown> | undefined) {
  if (!image) return undefined;
  const parsed = MetadataItem.safeParse(unmarshall(image as Record<string, AttributeValue>));
  // Items of kinds other than ours (none today) carry no network change.
  return parsed.success ? parsed.data : undefined;
}

/** Turns committed metadata changes into fan-out work; sending twice is harmless downstream. */
async function recordHandler(record: DynamoDBRecord): Promise<void> {
  const changes = changesFromItemUpdate(imageOf(record.dynamodb?.OldImage), imageOf(record.dynamodb?.NewImage));
  try {
    await Promise.all(
      changes.map((change) => sqs.send(new SendMessageCommand({ QueueUrl: fanOutQueueUrl, MessageBody: JSON.stringify(change) }))),
    );
  } catch (error) {
    logger.error('could not queue network change', { sequenceNumber: record.dynamodb?.SequenceNumber, error: error as Error });
    throw error;
  }
}

export const handler = middy<DynamoDBStreamEvent>().handler((event, context) =>
  processPartialResponse(event, recordHandler, processor, { context }),
);
