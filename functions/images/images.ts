import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type CompleteImageUploadRequest, type CreateImageRequest, PUBLIC_IMAGE_OWNER } from '#events/images.ts';
import { dynamodb, s3 } from '../platform/clients.ts';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { queryPage } from '../core/pagination.ts';
import { getItem } from '../core/store.ts';
import { indexes, indexKeys, keys, withoutTableKeys } from '../core/table-keys.ts';
import { getTenantItem, tenantOf } from '../core/access.ts';
import type { Principal } from '#events/tokens.ts';
import { contentMismatch, digestObject } from '../platform/object-digest.ts';

export interface ImageItem {
  kind: 'image';
  imageId: string;
  tenantId: string;
  name: string;
  sizeBytes: number;
  sha256: string;
  /** uploading → verifying → available, or failed with a reason. */
  state: 'uploading' | 'verifying' | 'available' | 'failed';
  failureReason?: string;
  /** When the last verification job was sent (see `requestVerification`). */
  verificationRequestedAt?: string;
  region: string;
  bucket: string;
  key: string;
  uploadId: string;
  partSize: number;
  createdAt: string;
  updatedAt: string;
}

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type ImageView = z.infer<typeof responses.Image>;

export const toImageView = ({
  kind: _kind,
  bucket: _bucket,
  key: _key,
  uploadId: _uploadId,
  partSize: _partSize,
  verificationRequestedAt: _requested,
  ...view
}: ImageItem): ImageView => ({ ...withoutTableKeys(view), public: view.tenantId === PUBLIC_IMAGE_OWNER });

const MIN_PART_BYTES = 8 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** Upload URLs last an hour; a slower upload asks for the image again (not yet offered). */
const UPLOAD_URL_SECONDS = 3600;

/** Parts of at least 8 MiB, and few enough for S3's 10,000-part limit. */
export const partSizeFor = (sizeBytes: number) => Math.max(MIN_PART_BYTES, Math.ceil(sizeBytes / MAX_PARTS / (1024 * 1024)) * 1024 * 1024);

/**
 * Starts an image upload: records the image and opens an S3 multipart upload, and hands the
 * tenant one presigned URL per part, so content goes straight to S3 in parts, never through a
 * function, and never whole into any memory.
 */
export async function createImage(table: string, bucket: string, region: string, tenantId: string, request: CreateImageRequest) {
  const imageId = newId('img');
  const key = `images/${imageId}`;
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/octet-stream' }));
  const partSize = partSizeFor(request.sizeBytes);
  const now = new Date().toISOString();
  const item: ImageItem & Record<string, unknown> = {
    ...keys.image(imageId),
    kind: 'image',
    imageId,
    tenantId,
    name: request.name,
    sizeBytes: request.sizeBytes,
    sha256: request.sha256,
    state: 'uploading',
    region,
    bucket,
    key,
    uploadId: UploadId!,
    partSize,
    createdAt: now,
    updatedAt: now,
    gsi1pk: indexKeys.imagesOfTenant(tenantId),
    gsi1sk: imageId,
  };
  await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  const partCount = Math.ceil(request.sizeBytes / partSize);
  const parts = await Promise.all(
    Array.from({ length: partCount }, async (_, index) => ({
      partNumber: index + 1,
      url: await getSignedUrl(s3, new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: UploadId, PartNumber: index + 1 }), {
        expiresIn: UPLOAD_URL_SECONDS,
      }),
    })),
  );
  return { image: toImageView(item), upload: { partSize, expiresInSeconds: UPLOAD_URL_SECONDS, parts } };
}

/** An owner's image (a tenant's, or PUBLIC_IMAGE_OWNER's); another tenant's is as unknown as one that does not exist. */
export async function getImage(table: string, ownerId: string, imageId: string): Promise<ImageItem> {
  return getTenantItem<ImageItem>(table, keys.image(imageId), ownerId, 'image', imageId);
}

/** An image a tenant may describe and launch: its own, or a public one. */
export async function getVisibleImage(table: string, tenantId: string, imageId: string): Promise<ImageItem> {
  const image = await getItem<ImageItem>(table, keys.image(imageId));
  if (!image || (image.tenantId !== tenantId && image.tenantId !== PUBLIC_IMAGE_OWNER)) throw new NotFoundError('image', imageId);
  return image;
}

/** Whose images a caller acts on: a tenant its own; an operator the public ones. */
export function imageOwnerOf(caller: Principal): string {
  return caller.kind === 'operator' ? PUBLIC_IMAGE_OWNER : tenantOf(caller);
}

export async function listImages(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<ImageItem>(table, { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.imagesOfTenant(tenantId) }, limit, nextToken);
  return { images: page.items.map(toImageView), nextToken: page.nextToken };
}

/**
 * Closes the multipart upload with the parts the tenant uploaded and hands the image to the
 * verifier. Only an image still uploading can be completed; S3 refuses parts that do not match.
 * Completing an image already verifying sends its verification job again if need be (see
 * `requestVerification`), so a client retrying after a failed call never leaves it stuck there.
 */
export async function completeImageUpload(
  table: string,
  tenantId: string,
  imageId: string,
  request: CompleteImageUploadRequest,
  verify: (imageId: string) => Promise<void>,
) {
  const image = await getImage(table, tenantId, imageId);
  if (image.state === 'verifying') {
    await requestVerification(table, image, verify);
    return toImageView(image);
  }
  if (image.state !== 'uploading') throw new ConflictError(`image ${imageId} is ${image.state}, not uploading`);
  const expected = Math.ceil(image.sizeBytes / image.partSize);
  const numbers = request.parts.map((part) => part.partNumber).sort((a, b) => a - b);
  if (numbers.length !== expected || numbers.some((number, index) => number !== index + 1)) {
    throw new ValidationError(`body.parts: give parts 1 to ${expected}, each once, with the ETag S3 answered for it`);
  }
  try {
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: image.bucket,
        Key: image.key,
        UploadId: image.uploadId,
        MultipartUpload: {
          Parts: [...request.parts].sort((a, b) => a.partNumber - b.partNumber).map((part) => ({ PartNumber: part.partNumber, ETag: part.etag })),
        },
      }),
    );
  } catch (error) {
    const name = (error as { name?: string }).name;
    if (name === 'InvalidPart' || name === 'InvalidPartOrder' || name === 'EntityTooSmall')
      throw new ValidationError(`body.parts: S3 refused them (${name}): ${(error as Error).message}`);
    throw error;
  }
  await setState(table, image, 'uploading', 'verifying');
  await requestVerification(table, { ...image, state: 'verifying' }, verify);
  return toImageView({ ...image, state: 'verifying' });
}

/** Longer than a verification job can run (the verifier's 15-minute timeout): a job sent longer ago than this may be lost. */
const VERIFICATION_RESEND_MS = 20 * 60 * 1000;

/**
 * Sends an image's verification job, then records when. The state change before it and the send
 * are not one transaction: a process that dies between them leaves the image verifying with no job
 * and none recorded, and the client's retry of `complete` sends it (chosen over an outbox on the
 * table's stream: no new consumer, and a retry is what a client does after a failed call anyway).
 * A job recorded in the last 20 minutes is not sent again; a second one would only cost a second
 * read of the content (the verifier acts on an image still verifying, once).
 */
async function requestVerification(table: string, image: ImageItem, verify: (imageId: string) => Promise<void>) {
  if (image.verificationRequestedAt && Date.now() - Date.parse(image.verificationRequestedAt) < VERIFICATION_RESEND_MS) return;
  await verify(image.imageId);
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.image(image.imageId),
        UpdateExpression: 'SET verificationRequestedAt = :now',
        ConditionExpression: '#state = :verifying',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':now': new Date().toISOString(), ':verifying': 'verifying' },
      }),
    );
  } catch (error) {
    // Verified meanwhile: nothing left to record.
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}

/**
 * Streams the uploaded content through SHA-256 and marks the image available, or failed with the
 * reason. Idempotent: only an image still verifying changes.
 */
export async function verifyImage(table: string, imageId: string): Promise<void> {
  const image = await getItem<ImageItem>(table, keys.image(imageId));
  if (image?.state !== 'verifying') return;
  const failure = contentMismatch(image, await digestObject(image.bucket, image.key));
  await setState(table, image, 'verifying', failure ? 'failed' : 'available', failure);
}

async function setState(table: string, image: ImageItem, from: ImageItem['state'], to: ImageItem['state'], failureReason?: string) {
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.image(image.imageId),
        UpdateExpression: `SET #state = :to, updatedAt = :now${failureReason ? ', failureReason = :reason' : ''}`,
        ConditionExpression: '#state = :from',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':to': to, ':from': from, ':now': new Date().toISOString(), ...(failureReason ? { ':reason': failureReason } : {}) },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new ConflictError(`image ${image.imageId} changed state meanwhile`);
    throw error;
  }
}
