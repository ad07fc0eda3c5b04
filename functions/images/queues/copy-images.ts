import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { CopyImageMessage } from '#events/images.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { queueHandler } from '../../triggers/queue-handler.ts';
import { copyImage } from '../image-copies.ts';

const imageCopyQueueUrl = setting('imageCopyQueueUrl');

/** Copies images from other regions into this one, one per invocation; see copyImage. */
export const handler = queueHandler(
  CopyImageMessage,
  (message, record) =>
    copyImage(tableName, currentRegion, message.imageId, {
      // A retry is a new message after a delay, so this one is done and the copy's attempts count tries.
      scheduleRetry: async (delaySeconds) => {
        await sqs.send(new SendMessageCommand({ QueueUrl: imageCopyQueueUrl, MessageBody: record.body, DelaySeconds: delaySeconds }));
      },
    }),
  { name: 'copy message' },
);
