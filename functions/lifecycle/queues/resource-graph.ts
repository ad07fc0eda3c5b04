import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { GraphMessage } from '#events/projects.ts';
import { delayRetry, settleFailure, UnprocessableMessageError } from '../../triggers/dead-letters.ts';
import { sendGraphMessages } from '../../platform/graph-queue.ts';
import { parseJsonOrUndefined } from '../../triggers/json.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { handleGraphMessage } from '../resource-graph.ts';

async function handleRecord(record: SQSRecord): Promise<void> {
  const parsed = GraphMessage.safeParse(parseJsonOrUndefined(record.body));
  if (!parsed.success) throw new UnprocessableMessageError(`malformed graph message: ${parsed.error.issues[0]?.message}`);
  await handleGraphMessage(tableName, currentRegion, parsed.data, sendGraphMessages);
}

/**
 * The resource graph's FIFO consumer. Order only matters within a message group (one node), so
 * groups are handled side by side and each group's records one after another. A record that
 * fails and is to be retried holds back the rest of its group: they are reported failed too,
 * untried, and come back with it, in order. A record moved to the DLQ no longer holds them.
 */
export const handler = middy<SQSEvent, SQSBatchResponse>().handler(async (event) => {
  const groups = new Map<string, SQSRecord[]>();
  for (const record of event.Records) {
    const group = record.attributes.MessageGroupId ?? record.messageId;
    groups.set(group, [...(groups.get(group) ?? []), record]);
  }
  const retried: string[] = [];
  await Promise.all(
    [...groups.values()].map(async (records) => {
      for (const [index, record] of records.entries()) {
        try {
          await handleRecord(record);
        } catch (error) {
          if ((await settleFailure(record, error)) === 'dead-lettered') continue;
          const untried = records.slice(index + 1);
          // The group is blocked until the failed record comes back: let the rest come back right after it.
          await Promise.all(untried.map((rest) => delayRetry(rest, 0)));
          retried.push(record.messageId, ...untried.map((rest) => rest.messageId));
          return;
        }
      }
    }),
  );
  return { batchItemFailures: retried.map((itemIdentifier) => ({ itemIdentifier })) };
});
