import { SendMessageCommand } from '@aws-sdk/client-sqs';
import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { NetworkChange } from '#events/endpoints.ts';
import { sqs } from '../../platform/clients.ts';
import { settleFailure, UnprocessableMessageError } from '../../triggers/dead-letters.ts';
import { parseJsonOrUndefined } from '../../triggers/json.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { fanOut, type FanOutWork } from '../fanout.ts';

const send = async (queueUrl: string, body: string) => {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
};

/**
 * Delivers a batch of network changes to host queues, grouped per host. Each failed change is
 * settled alone: retried after a delay, or on its last attempt moved to the DLQ with the reason,
 * while the rest of the batch is delivered.
 */
export const handler = middy<SQSEvent, SQSBatchResponse>().handler(async (event) => {
  const work: FanOutWork[] = [];
  const failures = new Map<string, unknown>();
  for (const record of event.Records) {
    const parsed = NetworkChange.safeParse(parseJsonOrUndefined(record.body));
    if (parsed.success) work.push({ id: record.messageId, change: parsed.data });
    else failures.set(record.messageId, new UnprocessableMessageError(`malformed network change: ${parsed.error.issues[0]?.message}`));
  }
  for (const [id, error] of await fanOut(tableName, currentRegion, work, send)) failures.set(id, error);
  const retried: string[] = [];
  await Promise.all(
    event.Records.filter((record) => failures.has(record.messageId)).map(async (record) => {
      if ((await settleFailure(record, failures.get(record.messageId))) === 'retry') retried.push(record.messageId);
    }),
  );
  return { batchItemFailures: retried.map((itemIdentifier) => ({ itemIdentifier })) };
});
