import type { SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { QueueConsumer } from '../../host-agent/queue-consumer.ts';

describe('QueueConsumer', () => {
  it('says once when its queue answers again after receives failed, and deletes only what its handler accepted', async () => {
    // The queue, scripted: unreachable twice, then two messages, then empty long polls.
    const answers: (Error | { Messages?: { MessageId: string; ReceiptHandle: string; Body: string }[] })[] = [
      new Error('connect ECONNREFUSED'),
      new Error('socket hang up'),
      {
        Messages: [
          { MessageId: 'm1', ReceiptHandle: 'r1', Body: 'good' },
          { MessageId: 'm2', ReceiptHandle: 'r2', Body: 'bad' },
        ],
      },
    ];
    const deleted: string[] = [];
    const sqs = {
      send: async (command: { constructor: { name: string }; input: any }) => {
        if (command.constructor.name === 'DeleteMessageBatchCommand')
          return void deleted.push(...command.input.Entries.map((entry: { ReceiptHandle: string }) => entry.ReceiptHandle));
        const next = answers.shift() ?? {};
        if (next instanceof Error) throw next;
        await new Promise((resolve) => setTimeout(resolve, 5));
        return next;
      },
    } as unknown as SQSClient;
    let recovered = 0;
    const errors: string[] = [];
    const consumer = new QueueConsumer(
      sqs,
      'https://queue',
      (message) => {
        if (message.Body === 'bad') throw new Error('rejected');
      },
      (error) => errors.push(error.message),
      () => recovered++,
      0,
    );
    consumer.start();
    await new Promise((resolve) => setTimeout(resolve, 2_400));
    await consumer.stop();
    expect(recovered).toBe(1);
    expect(errors).toEqual(['connect ECONNREFUSED', 'socket hang up', 'rejected']);
    expect(deleted).toEqual(['r1']);
  });

  it('counts every failed receive in its status, with the last error and its time, and logs the same error once', async () => {
    let calls = 0;
    const sqs = {
      send: async () => {
        calls++;
        if (calls <= 3) throw new Error('Region is missing');
        // A long poll takes its time.
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { Messages: calls === 4 ? [{ MessageId: 'm1', ReceiptHandle: 'r1', Body: 'x' }] : [] };
      },
    } as unknown as SQSClient;
    const errors: string[] = [];
    const consumer = new QueueConsumer(
      sqs,
      'https://queue',
      () => {},
      (error) => errors.push(error.message),
      () => {},
      0,
    );
    expect(consumer.status()).toEqual({ failing: false, receiveErrors: 0, lastReceiveError: null, lastReceiveAt: null, lastMessageAt: null });
    consumer.start();
    await new Promise((resolve) => setTimeout(resolve, 2_300));
    const failing = consumer.status();
    expect(failing).toMatchObject({ failing: true, receiveErrors: 3, lastReceiveError: { message: 'Region is missing' }, lastMessageAt: null });
    expect(Date.now() - Date.parse(failing.lastReceiveError!.at)).toBeLessThan(1_000);
    // Once in the log, however often it failed.
    expect(errors).toEqual(['Region is missing']);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await consumer.stop();
    const recovered = consumer.status();
    expect(recovered).toMatchObject({ failing: false, receiveErrors: 3, lastMessageAt: expect.any(String), lastReceiveAt: expect.any(String) });
    expect(Date.parse(recovered.lastReceiveAt!)).toBeGreaterThanOrEqual(Date.parse(recovered.lastMessageAt!));
  });
});
