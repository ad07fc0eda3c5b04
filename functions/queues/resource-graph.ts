import middy from '@middy/core';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { GraphMessage } from '#events/projects.ts';
import { sendGraphMessages } from '../commons/graph-queue.ts';
import { logger } from '../commons/logger.ts';
import { parseJsonOrUndefined } from '../commons/json.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { handleGraphMessage } from '../domain/resource-graph.ts';

async function handleRecord(record: SQSRecord): Promise<void> {
  const parsed = GraphMessage.safeParse(parseJsonOrUndefined(record.body));
  // A malformed message can never succeed: failing it sends it to the DLQ after the retries.
  if (!parsed.success) throw new Error(`malformed graph message ${record.messageId}: ${parsed.error.issues[0]?.message}`);
  await handleGraphMessage(tableName, currentRegion, parsed.data, sendGraphMessages);
}

/**
 * The resource graph's FIFO consumer. Order only matters within a message group (one node), so
 * groups are handled side by side and each group's records one after another; when a record
 * fails, it and the rest of its group are reported failed, so SQS redelivers them in order.
 */
export const handler = middy<SQSEvent, SQSBatchResponse>().handler(async (event) => {
  const groups = new Map<string, SQSRecord[]>();
  for (const record of event.Records) {
    const group = record.attributes.MessageGroupId ?? record.messageId;
    groups.set(group, [...(groups.get(group) ?? []), record]);
  }
  const failed: string[] = [];
  await Promise.all(
    [...groups.values()].map(async (records) => {
      for (const [index, record] of records.entries()) {
        try {
          await handleRecord(record);
        } catch (error) {
          logger.error('graph message failed', { messageId: record.messageId, body: record.body, error: error as Error });
          failed.push(...records.slice(index).map((rest) => rest.messageId));
          return;
        }
      }
    }),
  );
  return { batchItemFailures: failed.map((itemIdentifier) => ({ itemIdentifier })) };
});
