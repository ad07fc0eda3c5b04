import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';

/*
 * One client per service for the whole module graph. Region and endpoint come from the
 * environment (AWS_REGION, AWS_ENDPOINT_URL), so the same code talks to AWS or the local emulator.
 */
export const dynamodb = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
  marshallOptions: { removeUndefinedValues: true },
});

export const sqs = new SQSClient({});

export const kms = new KMSClient({});

/** Buckets are addressed by path when an endpoint is set: a local endpoint has no per-bucket host names. */
export const s3 = new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL) });
