import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb';
import { dynamodb } from '../platform/clients.ts';
import { backoff } from './store.ts';

/** Deletes up to 25 items, retrying whatever DynamoDB leaves unprocessed. Deleting a missing item is a no-op. */
export async function batchDelete(table: string, itemKeys: { pk: string; sk: string }[]): Promise<void> {
  let pending = itemKeys.map((Key) => ({ DeleteRequest: { Key } }));
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt > 0) await backoff(attempt);
    const { UnprocessedItems } = await dynamodb.send(new BatchWriteCommand({ RequestItems: { [table]: pending } }));
    pending = (UnprocessedItems?.[table] ?? []) as typeof pending;
  }
}
