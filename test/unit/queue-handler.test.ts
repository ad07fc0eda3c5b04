import { ChangeMessageVisibilityCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { deadLetterAttributes } from '#events/dead-letters.ts';
import { logger } from '#functions/platform/logger.ts';
import { deadLetters } from '#functions/triggers/dead-letters.ts';
import { queueHandler } from '#functions/triggers/queue-handler.ts';

const context = {
  functionName: 'consumer',
  awsRequestId: 'request-1',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:consumer',
  memoryLimitInMB: '128',
} as Context;
const route = { sourceQueueUrl: 'https://sqs/source', deadLetterQueueUrl: 'https://sqs/dlq', maxAttempts: 3 };
const Job = z.strictObject({ job: z.string() });

interface Options {
  /** Delivery count (ApproximateReceiveCount); 1 unless given. */
  attempts?: number;
  group?: string;
  /** The raw body; `{"job": id}` unless given. */
  body?: string;
}

/** An SQS record as the event source mapping hands it over; its receipt handle is `receipt-<id>`. */
function record(id: string, options: Options = {}): SQSRecord {
  return {
    messageId: id,
    receiptHandle: `receipt-${id}`,
    body: options.body ?? JSON.stringify({ job: id }),
    attributes: {
      ApproximateReceiveCount: String(options.attempts ?? 1),
      SentTimestamp: '0',
      SenderId: 'sender',
      ApproximateFirstReceiveTimestamp: '0',
      ...(options.group ? { MessageGroupId: options.group, MessageDeduplicationId: id, SequenceNumber: '1' } : {}),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-east-1:000000000000:source',
    awsRegion: 'us-east-1',
  };
}

const event = (...records: SQSRecord[]): SQSEvent => ({ Records: records });

/** SQS as the settler sees it: what went to the dead-letter queue and which visibilities changed. */
function fakeSqs(options: { deadLetterQueueDown?: boolean } = {}) {
  const deadLettered: { body: string; reason?: string; attempts?: string; group?: string; dedup?: string }[] = [];
  const visibility: Record<string, number> = {};
  const client = {
    send: async (command: unknown) => {
      if (command instanceof SendMessageCommand) {
        if (options.deadLetterQueueDown) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        const input = command.input;
        expect(input.QueueUrl).toBe(route.deadLetterQueueUrl);
        deadLettered.push({
          body: input.MessageBody!,
          reason: input.MessageAttributes?.[deadLetterAttributes.reason]?.StringValue,
          attempts: input.MessageAttributes?.[deadLetterAttributes.attempts]?.StringValue,
          group: input.MessageGroupId,
          dedup: input.MessageDeduplicationId,
        });
      } else if (command instanceof ChangeMessageVisibilityCommand) {
        expect(command.input.QueueUrl).toBe(route.sourceQueueUrl);
        visibility[command.input.ReceiptHandle!.replace('receipt-', '')] = command.input.VisibilityTimeout!;
      } else throw new Error(`unexpected command ${String(command)}`);
      return {};
    },
  } as unknown as SQSClient;
  return { settler: deadLetters(route, client), deadLettered, visibility };
}

const failedIds = (response: SQSBatchResponse) => response.batchItemFailures.map((failure) => failure.itemIdentifier);

afterEach(() => vi.restoreAllMocks());

describe('queueHandler, one record at a time', () => {
  it('retries a failure after a short delay, dead-letters it on its last attempt, and dead-letters malformed bodies at once with the reason', async () => {
    const sqs = fakeSqs();
    const handled: string[] = [];
    const handler = queueHandler(
      Job,
      async (message, received) => {
        expect(received.messageId).toBe(message.job);
        if (message.job.startsWith('bad')) throw new Error(`cannot do ${message.job}`);
        handled.push(message.job);
      },
      { name: 'job message', deadLetters: sqs.settler },
    );
    const response = await handler(
      event(
        record('ok-1'),
        record('bad-first', { attempts: 1 }),
        record('bad-second', { attempts: 2 }),
        record('bad-last', { attempts: 3 }),
        record('not-json', { body: '{"job": ' }),
        record('wrong-shape', { body: '{"job": 7}' }),
        record('ok-2', { attempts: 2 }),
      ),
      context,
    );

    expect(failedIds(response).sort()).toEqual(['bad-first', 'bad-second']);
    expect(handled.sort()).toEqual(['ok-1', 'ok-2']);
    // Exponential delay: 1 s after the first delivery, 2 s after the second.
    expect(sqs.visibility).toEqual({ 'bad-first': 1, 'bad-second': 2 });
    expect(sqs.deadLettered.map(({ body, reason, attempts }) => ({ body, reason, attempts })).sort((a, b) => a.body.localeCompare(b.body))).toEqual([
      { body: '{"job": ', reason: 'UnprocessableMessageError: malformed job message: the body is not JSON', attempts: '1' },
      { body: '{"job": 7}', reason: expect.stringMatching(/^UnprocessableMessageError: malformed job message: job: /), attempts: '1' },
      { body: JSON.stringify({ job: 'bad-last' }), reason: 'Error: cannot do bad-last', attempts: '3' },
    ]);
  });

  it('retries a record it could not dead-letter (the queue redrive policy still catches it)', async () => {
    const sqs = fakeSqs({ deadLetterQueueDown: true });
    const handler = queueHandler(Job, async () => {}, { deadLetters: sqs.settler });
    const response = await handler(event(record('ok'), record('garbage', { body: 'garbage' })), context);
    expect(failedIds(response)).toEqual(['garbage']);
  });

  it('puts the Lambda context in the logger for the invocation', async () => {
    const addContext = vi.spyOn(logger, 'addContext');
    const handler = queueHandler(Job, async () => {}, { deadLetters: fakeSqs().settler });
    expect(await handler(event(record('a')), context)).toEqual({ batchItemFailures: [] });
    expect(addContext).toHaveBeenCalledWith(context);
  });
});

describe('queueHandler, batch mode', () => {
  it('hands every well-formed message over at once and settles the failures it names, and the malformed ones', async () => {
    const sqs = fakeSqs();
    const batches: { id: string; job: string }[][] = [];
    const handler = queueHandler(
      Job,
      async (messages) => {
        batches.push(messages.map(({ id, message }) => ({ id, job: message.job })));
        return new Map<string, unknown>([
          ['m2', new Error('host queue unreachable')],
          ['m4', new Error('host queue unreachable')],
        ]);
      },
      { mode: 'batch', name: 'network change', deadLetters: sqs.settler },
    );
    const response = await handler(event(record('m1'), record('m2'), record('m3', { body: '[]' }), record('m4', { attempts: 3 }), record('m5')), context);

    expect(batches).toEqual([['m1', 'm2', 'm4', 'm5'].map((id) => ({ id, job: id }))]);
    expect(failedIds(response)).toEqual(['m2']);
    expect(sqs.visibility).toEqual({ m2: 1 });
    expect(sqs.deadLettered.map(({ body, reason }) => ({ body, reason })).sort((a, b) => a.body.localeCompare(b.body))).toEqual([
      { body: '[]', reason: expect.stringMatching(/^UnprocessableMessageError: malformed network change: /) },
      { body: JSON.stringify({ job: 'm4' }), reason: 'Error: host queue unreachable' },
    ]);
  });

  it('counts every message of a batch as failed when the handler throws', async () => {
    const sqs = fakeSqs();
    const handler = queueHandler(
      Job,
      async () => {
        throw new Error('table unavailable');
      },
      { mode: 'batch', deadLetters: sqs.settler },
    );
    const response = await handler(event(record('m1'), record('m2', { attempts: 3 })), context);
    expect(failedIds(response)).toEqual(['m1']);
    expect(sqs.deadLettered.map(({ reason }) => reason)).toEqual(['Error: table unavailable']);
  });

  it('does not call the handler for a batch with nothing well formed', async () => {
    const sqs = fakeSqs();
    const handle = vi.fn(async () => new Map<string, unknown>());
    const response = await queueHandler(Job, handle, { mode: 'batch', deadLetters: sqs.settler })(event(record('m1', { body: 'x' })), context);
    expect(handle).not.toHaveBeenCalled();
    expect(failedIds(response)).toEqual([]);
    expect(sqs.deadLettered).toHaveLength(1);
  });
});

describe('queueHandler, FIFO ordering', () => {
  /** A handler that records what it handled, in order, and fails the jobs named in `failing`. */
  function ordered(failing: Set<string>, sqs = fakeSqs(), gate?: { job: string; waitFor: Promise<void> }) {
    const handled: string[] = [];
    const handler = queueHandler(
      Job,
      async (message) => {
        if (gate?.job === message.job) await gate.waitFor;
        handled.push(message.job);
        if (failing.has(message.job)) throw new Error(`${message.job} failed`);
      },
      { mode: 'fifo', name: 'graph message', deadLetters: sqs.settler },
    );
    return { handler, handled, sqs };
  }

  it('holds back the rest of a group behind a record to be retried, without holding back other groups', async () => {
    // Group A's first record waits until group B has been handled: groups go side by side.
    let groupBDone!: () => void;
    const waitFor = new Promise<void>((resolve) => (groupBDone = resolve));
    const { handler, handled, sqs } = ordered(new Set(['a2']), fakeSqs(), { job: 'a1', waitFor });
    const running = handler(
      event(
        record('a1', { group: 'A' }),
        record('b1', { group: 'B' }),
        record('a2', { group: 'A' }),
        record('b2', { group: 'B' }),
        record('a3', { group: 'A' }),
        record('a4', { group: 'A' }),
      ),
      context,
    );
    await vi.waitFor(() => expect(handled).toEqual(['b1', 'b2']));
    groupBDone();
    const response = await running;

    expect(handled).toEqual(['b1', 'b2', 'a1', 'a2']);
    expect(failedIds(response)).toEqual(['a2', 'a3', 'a4']);
    // The failed record waits out its retry delay; the held-back ones come back right after it, untried.
    expect(sqs.visibility).toEqual({ a2: 1, a3: 0, a4: 0 });
    expect(sqs.deadLettered).toEqual([]);
  });

  it('goes on with the group after a record it dead-lettered, malformed or out of attempts, keeping its group in the DLQ', async () => {
    const { handler, handled, sqs } = ordered(new Set(['a2']));
    const response = await handler(
      event(
        record('a1', { group: 'A' }),
        record('a2', { group: 'A', attempts: 3 }),
        record('a3', { group: 'A', body: '{"not": "a job"}' }),
        record('a4', { group: 'A' }),
      ),
      context,
    );
    expect(handled).toEqual(['a1', 'a2', 'a4']);
    expect(failedIds(response)).toEqual([]);
    expect(sqs.deadLettered).toEqual([
      { body: JSON.stringify({ job: 'a2' }), reason: 'Error: a2 failed', attempts: '3', group: 'A', dedup: 'a2' },
      {
        body: '{"not": "a job"}',
        reason: expect.stringMatching(/^UnprocessableMessageError: malformed graph message: /),
        attempts: '1',
        group: 'A',
        dedup: 'a3',
      },
    ]);
  });

  it('holds the group back behind a record it could not dead-letter', async () => {
    const { handler, handled, sqs } = ordered(new Set(), fakeSqs({ deadLetterQueueDown: true }));
    const response = await handler(event(record('a1', { group: 'A', body: 'garbage' }), record('a2', { group: 'A' }), record('b1', { group: 'B' })), context);
    expect(handled).toEqual(['b1']);
    expect(failedIds(response)).toEqual(['a1', 'a2']);
    expect(sqs.visibility).toEqual({ a2: 0 });
  });

  it('reports failures in the order of the batch, the failed record first', async () => {
    const { handler } = ordered(new Set(['a1', 'b2']));
    const response = await handler(
      event(
        record('a1', { group: 'A' }),
        record('b1', { group: 'B' }),
        record('a2', { group: 'A' }),
        record('b2', { group: 'B' }),
        record('b3', { group: 'B' }),
      ),
      context,
    );
    expect(failedIds(response)).toEqual(['a1', 'a2', 'b2', 'b3']);
  });
});
