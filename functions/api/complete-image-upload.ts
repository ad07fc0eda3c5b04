import { operations } from '#events/operations.ts';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { type VerifyImageMessage } from '#events/images.ts';
import { sqs } from '../commons/clients.ts';
import { requiredEnv } from '../commons/env.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { completeImageUpload } from '../domain/images.ts';

const verifyQueueUrl = requiredEnv('IMAGE_VERIFY_QUEUE_URL');
const verify = async (imageId: string) => {
  const message: VerifyImageMessage = { imageId };
  await sqs.send(new SendMessageCommand({ QueueUrl: verifyQueueUrl, MessageBody: JSON.stringify(message) }));
};

/** 202: the content is checked against its declared SHA-256 by the verifier; GET the image to see the outcome. */
export const handler = apiHandler(operations.completeImageUpload, async ({ path, body, caller }) => ({
  statusCode: 202,
  body: await completeImageUpload(tableName, tenantOf(caller), path.imageId, body, verify),
}));
