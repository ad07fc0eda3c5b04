import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import middy from '@middy/core';
import type { DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { z } from 'zod';
import { logger } from '../platform/logger.ts';

/** A committed change to one item: what it was and what it is now, each undefined when absent or not of the stream's kind. */
export interface ItemChange<T> {
  oldImage: T | undefined;
  newImage: T | undefined;
}

/**
 * Reads an unmarshalled item image: a zod schema (items it refuses read as undefined: the table
 * holds items of other kinds too), or a function that returns undefined for the items it ignores.
 */
export type ImageDecoder<T> = z.ZodType<T> | ((item: Record<string, unknown>) => T | undefined);

export type StreamRecordHandler<T> = (change: ItemChange<T>, record: DynamoDBRecord) => Promise<void>;

export interface StreamHandlerOptions<T> {
  /** Runs once per batch before any record is handled, with every record's change: what a record's handling needs to know of the others. */
  beforeBatch?: (changes: ItemChange<T>[]) => Promise<void>;
}

/**
 * Wraps a DynamoDB Streams consumer: the Lambda context in every log line, each record's old and
 * new images unmarshalled and decoded, records handled side by side by Powertools' BatchProcessor,
 * and the ones whose handler threw logged and reported as batch item failures (the event source
 * mapping retries from the first of them, and sends what never succeeds to its on-failure
 * destination).
 */
export function streamHandler<T>(
  decode: ImageDecoder<T>,
  handle: StreamRecordHandler<T>,
  options: StreamHandlerOptions<T> = {},
): middy.MiddyfiedHandler<DynamoDBStreamEvent, DynamoDBBatchResponse> {
  const processor = new BatchProcessor(EventType.DynamoDBStreams);
  const read = (image: Record<string, AttributeValue> | undefined): T | undefined => {
    if (!image) return undefined;
    const item = unmarshall(image);
    if (typeof decode === 'function') return decode(item);
    const parsed = decode.safeParse(item);
    return parsed.success ? parsed.data : undefined;
  };
  const changeOf = (record: DynamoDBRecord): ItemChange<T> => ({
    oldImage: read(record.dynamodb?.OldImage as Record<string, AttributeValue> | undefined),
    newImage: read(record.dynamodb?.NewImage as Record<string, AttributeValue> | undefined),
  });
  const recordHandler = async (record: DynamoDBRecord): Promise<void> => {
    try {
      await handle(changeOf(record), record);
    } catch (error) {
      logger.error('stream record failed', { eventId: record.eventID, sequenceNumber: record.dynamodb?.SequenceNumber, error: error as Error });
      throw error;
    }
  };
  return middy<DynamoDBStreamEvent, DynamoDBBatchResponse>()
    .use(injectLambdaContext(logger))
    .handler(async (event, context) => {
      await options.beforeBatch?.(event.Records.map(changeOf));
      return processPartialResponse(event, recordHandler, processor, { context });
    });
}
