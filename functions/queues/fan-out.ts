import { SendMessageCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { NetworkChange } from '#events/endpoints.ts';
import { sqs } from '../commons/clients.ts';
import { parseJsonOrUndefined } from '../commons/json.ts';
import { logger } from '../commons/logger.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { fanOut, type FanOutWork } from '../domain/fanout.ts';

const send = async (queueUrl: string, body: string) => {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
};

/**
 * Delivers a batch of network changes to host queues, grouped per host. Each failed change is
 * reported alone so SQS retries only it, and after repeated failures moves it to the DLQ.
 */
export const handler = middy<SQSEvent, SQSBatchResponse>().handler(async (event) => {
  const work: FanOutWork[] = [];
  const failed = new Set<string>();
  for (const record of event.Records) {
    const parsed = NetworkChange.safeParse(parseJsonOrUndefined(record.body));
    if (parsed.success) work.push({ id: record.messageId, change: parsed.data });
    else {
      logger.error('malformed fan-out message', { messageId: record.messageId, issues: parsed.error.issues });
      failed.add(record.messageId);
    }
  }
  for (const id of await fanOut(tableName, currentRegion, work, send)) failed.add(id);
  return { batchItemFailures: [...failed].map((itemIdentifier) => ({ itemIdentifier })) };
});
