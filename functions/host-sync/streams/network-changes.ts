import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { MetadataItem } from '#events/records.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { streamHandler } from '../../triggers/stream-handler.ts';
import { changesFromItemUpdate } from '../network-changes.ts';

const fanOutQueueUrl = setting('fanOutQueueUrl');

/**
 * Turns committed metadata changes into fan-out work; sending twice is harmless downstream. Items
 * of kinds other than ours (none today) read as undefined and carry no network change.
 */
export const handler = streamHandler(MetadataItem, async ({ oldImage, newImage }) => {
  await Promise.all(
    changesFromItemUpdate(oldImage, newImage).map((change) =>
      sqs.send(new SendMessageCommand({ QueueUrl: fanOutQueueUrl, MessageBody: JSON.stringify(change) })),
    ),
  );
});
