import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import middy from '@middy/core';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { VerifyImageMessage } from '#events/images.ts';
import { UnprocessableMessageError, withDeadLetters } from '../../triggers/dead-letters.ts';
import { parseJsonOrUndefined } from '../../triggers/json.ts';
import { tableName } from '../../platform/table.ts';
import { verifyImage } from '../images.ts';

const processor = new BatchProcessor(EventType.SQS);

async function recordHandler(record: SQSRecord): Promise<void> {
  const parsed = VerifyImageMessage.safeParse(parseJsonOrUndefined(record.body));
  if (!parsed.success) throw new UnprocessableMessageError(`malformed verify message: ${parsed.error.issues[0]?.message}`);
  await verifyImage(tableName, parsed.data.imageId);
}

/** Checks uploaded images against their declared SHA-256, streaming; each image's failure is retried alone. */
export const handler = middy<SQSEvent>().handler((event, context) => processPartialResponse(event, withDeadLetters(recordHandler), processor, { context }));
