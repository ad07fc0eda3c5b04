import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  TransactWriteItemsCommand,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient, DescribeStreamCommand, GetRecordsCommand, GetShardIteratorCommand } from '@aws-sdk/client-dynamodb-streams';
import { describe, expect, it } from 'vitest';
import { createStreamTable, localAwsConfig } from '../helpers/local-aws.ts';

/**
 * What the control plane relies on from DynamoDB, checked against whichever local AWS runs the
 * tests: a condition is checked and the write made atomically, also under concurrent callers (IP
 * allocation and host capacity depend on it); a cancelled transaction leaves no trace, and a stream
 * iterator keeps seeing new records.
 */
describe('local AWS transaction semantics', () => {
  const dynamodb = new DynamoDBClient(localAwsConfig());
  const streams = new DynamoDBStreamsClient(localAwsConfig());

  it('lets exactly one of many concurrent conditional writes win', async () => {
    const TableName = `cond-check-${Date.now()}`;
    await createStreamTable(dynamodb, TableName);
    const attempts = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        dynamodb.send(new PutItemCommand({ TableName, Item: { pk: { S: 'slot' }, owner: { S: `w${i}` } }, ConditionExpression: 'attribute_not_exists(pk)' })),
      ),
    );
    expect(attempts.filter((attempt) => attempt.status === 'fulfilled')).toHaveLength(1);
    for (const attempt of attempts) if (attempt.status === 'rejected') expect(attempt.reason).toBeInstanceOf(ConditionalCheckFailedException);
  });

  it('rolls back a cancelled transaction and keeps the stream flowing', async () => {
    const TableName = `tx-check-${Date.now()}`;
    const StreamArn = await createStreamTable(dynamodb, TableName);
    const { StreamDescription } = await streams.send(new DescribeStreamCommand({ StreamArn }));
    let { ShardIterator } = await streams.send(
      new GetShardIteratorCommand({ StreamArn, ShardId: StreamDescription!.Shards![0]!.ShardId!, ShardIteratorType: 'TRIM_HORIZON' }),
    );

    const put = (pk: string, value: string, condition?: string) => ({
      Put: { TableName, Item: { pk: { S: pk }, value: { S: value } }, ConditionExpression: condition },
    });
    await dynamodb.send(new TransactWriteItemsCommand({ TransactItems: [put('a', '1'), put('b', '1')] }));
    // First item would apply, second fails: neither may remain.
    const cancelled = dynamodb.send(
      new TransactWriteItemsCommand({ TransactItems: [put('a', '2'), put('c', '2'), put('b', '2', 'attribute_not_exists(pk)')] }),
    );
    await expect(cancelled).rejects.toBeInstanceOf(TransactionCanceledException);
    await dynamodb.send(new TransactWriteItemsCommand({ TransactItems: [put('d', '3')] }));

    expect((await dynamodb.send(new GetItemCommand({ TableName, Key: { pk: { S: 'a' } }, ConsistentRead: true }))).Item?.value?.S).toBe('1');
    expect((await dynamodb.send(new GetItemCommand({ TableName, Key: { pk: { S: 'c' } }, ConsistentRead: true }))).Item).toBeUndefined();

    const seen: string[] = [];
    for (let i = 0; i < 10 && seen.length < 3; i++) {
      const page = await streams.send(new GetRecordsCommand({ ShardIterator }));
      seen.push(...(page.Records ?? []).map((record) => record.dynamodb!.Keys!.pk!.S!));
      ShardIterator = page.NextShardIterator;
    }
    // The iterator opened before the cancelled transaction still sees the write after it.
    expect(seen).toEqual(['a', 'b', 'd']);
  });
});
