import { operations } from '#events/operations.ts';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import type { VerifyImageMessage } from '#events/images.ts';
import { sqs } from '../../platform/clients.ts';
import { setting } from '../../platform/env.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { completeImageUpload, imageOwnerOf } from '../images.ts';

const verifyQueueUrl = setting('imageVerifyQueueUrl');
const verify = async (imageId: string) => {
  const message: VerifyImageMessage = { imageId };
  await sqs.send(new SendMessageCommand({ QueueUrl: verifyQueueUrl, MessageBody: JSON.stringify(message) }));
};

/** 202: the content is checked against its declared SHA-256 by the verifier; GET the image to see the outcome. */
export const handler = apiHandler(operations.completeImageUpload, async ({ path, body, caller }) => ({
  statusCode: 202,
  body: await completeImageUpload(tableName, imageOwnerOf(caller), path.imageId, body, verify),
}));
