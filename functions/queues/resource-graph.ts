import { processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import middy from '@middy/core';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { GraphMessage } from '#events/projects.ts';
import { sendGraphMessages } from '../commons/graph-queue.ts';
import { logger } from '../commons/logger.ts';
import { tableName } from '../commons/table.ts';
import { handleGraphMessage } from '../domain/resource-graph.ts';

const processor = new SqsFifoPartialProcessorAsync();

async function recordHandler(record: SQSRecord): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse(record.body);
  } catch {
    body = undefined;
  }
  const parsed = GraphMessage.safeParse(body);
  // A malformed message can never succeed: failing it sends it to the DLQ after the retries.
  if (!parsed.success) throw new Error(`malformed graph message ${record.messageId}: ${parsed.error.issues[0]?.message}`);
  try {
    await handleGraphMessage(tableName, parsed.data, sendGraphMessages);
  } catch (error) {
    logger.error('graph message failed', { message: parsed.data, error: error as Error });
    throw error;
  }
}

/** The resource graph: each node's messages in order (FIFO, grouped by node); other nodes go on when one fails. */
export const handler = middy<SQSEvent>().handler((event, context) =>
  processPartialResponse(event, recordHandler, processor, { context, skipGroupOnError: true }),
);
