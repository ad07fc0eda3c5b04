import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { CopyImageMessage } from '#events/images.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { currentRegion } from '../../platform/region.ts';
import { streamHandler } from '../../triggers/stream-handler.ts';
import { startsCopyJob, type ImageCopyItem } from '../image-copies.ts';

const imageCopyQueueUrl = setting('imageCopyQueueUrl');

/**
 * Queues a copy job for every copy this region has just started: the stream is the outbox, so a
 * launch that created a copy can never leave it without a job, however it ends. Items are read as
 * they are: startsCopyJob tells copies from the table's other kinds.
 */
export const handler = streamHandler(
  (item) => item as Partial<ImageCopyItem>,
  async ({ oldImage, newImage }) => {
    if (!startsCopyJob(oldImage, newImage, currentRegion)) return;
    const message: CopyImageMessage = { imageId: newImage!.imageId! };
    await sqs.send(new SendMessageCommand({ QueueUrl: imageCopyQueueUrl, MessageBody: JSON.stringify(message) }));
  },
);
