import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { NetworkChange } from '#events/endpoints.ts';
import { MetadataItem } from '#events/records.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { logger } from '../../platform/logger.ts';
import { tableName } from '../../platform/table.ts';
import { streamHandler } from '../../triggers/stream-handler.ts';
import { changesFromItemUpdate } from '../network-changes.ts';
import { deliveredAlready, type DeliveredVersions, readDeliveredVersions } from '../delivered-endpoints.ts';

const fanOutQueueUrl = setting('fanOutQueueUrl');

/** What the current batch's slots say the fast path delivered (one batch at a time per container). */
let delivered: DeliveredVersions = new Map();

/**
 * Turns committed metadata changes into fan-out work; sending twice is harmless downstream. An
 * endpoint change the fast path delivered already goes no further. Items of kinds other than ours
 * (none today) read as undefined and carry no network change.
 */
export const handler = streamHandler(
  MetadataItem,
  async ({ oldImage, newImage }) => {
    await Promise.all(
      changesFromItemUpdate(oldImage, newImage)
        .filter((change) => !deliveredAlready(change, delivered))
        .map((change) => sqs.send(new SendMessageCommand({ QueueUrl: fanOutQueueUrl, MessageBody: JSON.stringify(change) }))),
    );
  },
  {
    beforeBatch: async (itemChanges) => {
      const changes: NetworkChange[] = itemChanges.flatMap(({ oldImage, newImage }) => changesFromItemUpdate(oldImage, newImage));
      try {
        delivered = await readDeliveredVersions(
          tableName,
          changes,
          itemChanges.map(({ newImage }) => newImage),
        );
      } catch (error) {
        // Not knowing only costs messages: the fan-out checks again before it sends.
        delivered = new Map();
        logger.warn('could not read whether the fast path delivered; forwarding every endpoint change', { error: error as Error });
      }
    },
  },
);
