import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DynamoDBClient, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { Checkpoints } from '../../local/checkpoints.ts';
import type { LocalFunction } from '../../local/function-host.ts';
import { QueuePoller } from '../../local/queue-poller.ts';
import { StreamPoller } from '../../local/stream-poller.ts';
import { eventually } from '../helpers/agents.ts';
import { createStreamTable, localAwsConfig } from '../helpers/local-aws.ts';

/**
 * The local runner's event source mappings against the real local AWS, with a scripted function:
 * what is deleted, retried, bisected and sent to the DLQ must match Lambda's documented behaviour.
 */
const sqs = new SQSClient(localAwsConfig());
const dynamodb = new DynamoDBClient(localAwsConfig());
const unique = () => `esm-${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;

type Invocation = { Records: any[] };
function scriptedFunction(behaviour: (event: Invocation) => unknown): LocalFunction & { invocations: Invocation[] } {
  const invocations: Invocation[] = [];
  return {
    spec: { functionName: 'scripted' },
    invocations,
    invoke: async (event: Invocation) => {
      invocations.push(event);
      return behaviour(event);
    },
  } as unknown as LocalFunction & { invocations: Invocation[] };
}

const stoppers: (() => void)[] = [];
afterEach(() => {
  for (const stop of stoppers.splice(0)) stop();
});
const noLog = () => {};

async function queue(name: string, attributes: Record<string, string> = {}) {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  return { url: QueueUrl!, arn: Attributes!.QueueArn! };
}

describe('SQS event source mapping', () => {
  it('deletes what succeeded, redelivers reported failures, and lets the redrive policy move a poison message to the DLQ', async () => {
    const dlq = await queue(unique());
    const source = await queue(unique(), { VisibilityTimeout: '1', RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: 2 }) });
    const fn = scriptedFunction((event) => ({
      batchItemFailures: event.Records.filter((record) => record.body === 'poison').map((record) => ({ itemIdentifier: record.messageId })),
    }));
    const poller = new QueuePoller(
      {
        queueUrl: source.url,
        queueArn: source.arn,
        batchSize: 10,
        maximumBatchingWindowSeconds: 0,
        reportBatchItemFailures: true,
        region: inject('region'),
        pollers: 1,
      },
      fn,
      noLog,
    );
    for (const body of ['a', 'poison', 'b']) await sqs.send(new SendMessageCommand({ QueueUrl: source.url, MessageBody: body }));
    poller.start();
    stoppers.push(() => poller.stop());

    await eventually(async () => {
      const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlq.url, WaitTimeSeconds: 1 }));
      expect(Messages.map((message) => message.Body)).toEqual(['poison']);
    }, 20_000);
    const bodies = fn.invocations.flatMap((event) => event.Records.map((record) => record.body));
    expect(bodies.filter((body) => body === 'a')).toHaveLength(1);
    expect(bodies.filter((body) => body === 'b')).toHaveLength(1);
    expect(bodies.filter((body) => body === 'poison')).toHaveLength(2);
    expect(fn.invocations[0]!.Records[0]).toMatchObject({ eventSource: 'aws:sqs', eventSourceARN: source.arn });
  });
});

describe('DynamoDB stream event source mapping', () => {
  async function streamTable() {
    const TableName = unique();
    const streamArn = await createStreamTable(dynamodb, TableName);
    for (const pk of ['r1', 'r2', 'r3', 'r4', 'r5']) await dynamodb.send(new PutItemCommand({ TableName, Item: { pk: { S: pk } } }));
    return streamArn;
  }

  function startPoller(
    streamArn: string,
    fn: LocalFunction,
    overrides: { maximumRetryAttempts?: number; bisectOnError?: boolean; onFailureQueueUrl?: string },
  ) {
    const poller = new StreamPoller(
      {
        uuid: unique(),
        streamArn,
        batchSize: 10,
        startingPosition: 'TRIM_HORIZON',
        reportBatchItemFailures: true,
        bisectOnError: overrides.bisectOnError ?? false,
        maximumRetryAttempts: overrides.maximumRetryAttempts ?? 3,
        onFailureQueueUrl: overrides.onFailureQueueUrl,
        pollIntervalMs: 50,
        region: inject('region'),
      },
      fn,
      new Checkpoints(path.join(mkdtempSync(path.join(os.tmpdir(), 'esm-')), 'checkpoints.json')),
      noLog,
    );
    poller.start();
    stoppers.push(() => poller.stop());
  }
  const keysOf = (event: Invocation) => event.Records.map((record) => record.dynamodb.Keys.pk.S);

  it('retries from the first reported failure, in order, until it succeeds', async () => {
    const streamArn = await streamTable();
    let failuresLeft = 2;
    const fn = scriptedFunction((event) => {
      const r3 = event.Records.find((record) => record.dynamodb.Keys.pk.S === 'r3');
      if (r3 && failuresLeft-- > 0) return { batchItemFailures: [{ itemIdentifier: r3.dynamodb.SequenceNumber }] };
      return { batchItemFailures: [] };
    });
    startPoller(streamArn, fn, {});
    await eventually(async () => expect(fn.invocations).toHaveLength(3), 10_000);
    expect(fn.invocations.map(keysOf)).toEqual([
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      ['r3', 'r4', 'r5'],
      ['r3', 'r4', 'r5'],
    ]);
    expect(fn.invocations[0]!.Records[0]).toMatchObject({ eventName: 'INSERT', eventSource: 'aws:dynamodb', eventSourceARN: streamArn });
  });

  it('bisects a batch whose function throws, and sends what still fails past the retry limit to the on-failure queue', async () => {
    const streamArn = await streamTable();
    const onFailure = await queue(unique());
    const fn = scriptedFunction((event) => {
      if (keysOf(event).includes('r4')) throw new Error('poison record r4');
      return undefined;
    });
    startPoller(streamArn, fn, { maximumRetryAttempts: 1, bisectOnError: true, onFailureQueueUrl: onFailure.url });

    const { Messages = [] } = await (async () => {
      let received: { Messages?: { Body?: string }[] } = {};
      await eventually(async () => {
        received = await sqs.send(new ReceiveMessageCommand({ QueueUrl: onFailure.url, WaitTimeSeconds: 1 }));
        expect(received.Messages ?? []).toHaveLength(1);
      }, 20_000);
      return received;
    })();
    const failure = JSON.parse(Messages[0]!.Body!);
    expect(failure).toMatchObject({ requestContext: { condition: 'RetryAttemptsExhausted' }, DDBStreamBatchInfo: { batchSize: 1, streamArn } });
    // Everything but the poison record gets through; r5, after it, too.
    await eventually(async () => {
      const delivered = new Set(fn.invocations.filter((event) => !keysOf(event).includes('r4')).flatMap(keysOf));
      expect([...delivered].sort()).toEqual(['r1', 'r2', 'r3', 'r5']);
    }, 5_000);
  });
});
