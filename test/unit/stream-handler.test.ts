import { marshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue as StreamAttributeValue, Context, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { logger } from '#functions/platform/logger.ts';
import { streamHandler, type ItemChange } from '#functions/triggers/stream-handler.ts';

const context = {
  functionName: 'stream',
  awsRequestId: 'request-1',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:stream',
  memoryLimitInMB: '128',
} as Context;

const image = (item: Record<string, unknown>) => marshall(item) as Record<string, StreamAttributeValue>;

/** A stream record with NEW_AND_OLD_IMAGES, as the event source mapping hands it over. */
function streamRecord(sequenceNumber: string, oldItem: Record<string, unknown> | undefined, newItem: Record<string, unknown> | undefined): DynamoDBRecord {
  return {
    eventID: `event-${sequenceNumber}`,
    eventName: !oldItem ? 'INSERT' : !newItem ? 'REMOVE' : 'MODIFY',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    dynamodb: {
      SequenceNumber: sequenceNumber,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
      ...(oldItem ? { OldImage: image(oldItem) } : {}),
      ...(newItem ? { NewImage: image(newItem) } : {}),
    },
    eventSourceARN: 'arn:aws:dynamodb:us-east-1:000000000000:table/metadata/stream/0',
  };
}

const Vm = z.object({ kind: z.literal('vm'), vmId: z.string(), cpus: z.number() });

describe('streamHandler', () => {
  it('hands over old and new images decoded with the schema (other kinds as undefined) and reports the records that threw by sequence number', async () => {
    const seen: [string, ItemChange<z.infer<typeof Vm>>][] = [];
    const handler = streamHandler(Vm, async (change, record) => {
      seen.push([record.dynamodb!.SequenceNumber!, change]);
      if (change.newImage?.vmId === 'vm-bad') throw new Error('queue unavailable');
    });
    const response = await handler(
      {
        Records: [
          streamRecord('100', undefined, { kind: 'vm', vmId: 'vm-1', cpus: 2 }),
          streamRecord('200', { kind: 'vm', vmId: 'vm-1', cpus: 2 }, { kind: 'vm', vmId: 'vm-1', cpus: 4 }),
          streamRecord('300', { kind: 'disk', diskId: 'disk-1' }, undefined),
          streamRecord('400', undefined, { kind: 'vm', vmId: 'vm-bad', cpus: 1 }),
        ],
      } satisfies DynamoDBStreamEvent,
      context,
    );

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: '400' }] });
    expect(Object.fromEntries(seen)).toEqual({
      '100': { oldImage: undefined, newImage: { kind: 'vm', vmId: 'vm-1', cpus: 2 } },
      '200': { oldImage: { kind: 'vm', vmId: 'vm-1', cpus: 2 }, newImage: { kind: 'vm', vmId: 'vm-1', cpus: 4 } },
      '300': { oldImage: undefined, newImage: undefined },
      '400': { oldImage: undefined, newImage: { kind: 'vm', vmId: 'vm-bad', cpus: 1 } },
    });
  });

  it('decodes with a function when given one, and puts the Lambda context in the logger', async () => {
    const addContext = vi.spyOn(logger, 'addContext');
    const seen: unknown[] = [];
    const handler = streamHandler(
      (item) => (item.kind === 'image-copy' ? { imageId: String(item.imageId) } : undefined),
      async ({ oldImage, newImage }) => void seen.push({ oldImage, newImage }),
    );
    const response = await handler({ Records: [streamRecord('1', { kind: 'vm' }, { kind: 'image-copy', imageId: 'img-1', state: 'copying' })] }, context);
    expect(response).toEqual({ batchItemFailures: [] });
    expect(seen).toEqual([{ oldImage: undefined, newImage: { imageId: 'img-1' } }]);
    expect(addContext).toHaveBeenCalledWith(context);
  });

  it('shows every record of a batch to beforeBatch before it handles any', async () => {
    const order: string[] = [];
    const handler = streamHandler(Vm, async ({ newImage }) => void order.push(`handle ${newImage?.vmId}`), {
      beforeBatch: async (changes) => void order.push(`before ${changes.map(({ newImage }) => newImage?.vmId).join(',')}`),
    });
    await handler(
      {
        Records: [streamRecord('1', undefined, { kind: 'vm', vmId: 'vm-1', cpus: 1 }), streamRecord('2', undefined, { kind: 'vm', vmId: 'vm-2', cpus: 1 })],
      },
      context,
    );
    expect(order[0]).toBe('before vm-1,vm-2');
    expect(order.slice(1).sort()).toEqual(['handle vm-1', 'handle vm-2']);
  });
});
