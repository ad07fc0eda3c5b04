import { randomBytes } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError } from '../core/errors.ts';
import { copyObjectInParts, deleteObjectIn } from '../platform/object-copy.ts';
import { contentMismatch, digestObject } from '../platform/object-digest.ts';
import { getImage, getVisibleImage, toImageView, type ImageItem } from './images.ts';
import { PUBLIC_IMAGE_OWNER } from '#events/images.ts';
import { nodeAttributes } from '../tenancy/projects.ts';
import { getItem, queryAll, type TransactItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';

/**
 * An image's content in a region other than the one it was uploaded in. Written only by the
 * control plane of `region`, so its conditional writes never race another region's.
 * copying → available, or failed (a later launch tries again); releasing while the graph removes it.
 */
export interface ImageCopyItem {
  kind: 'image-copy';
  imageId: string;
  tenantId: string;
  projectId: string;
  /** `debian-13 (eu-west-1)`: the image's name, and where this copy of it is. */
  name: string;
  region: string;
  sourceRegion: string;
  state: 'copying' | 'available' | 'failed' | 'releasing';
  attempts: number;
  lastError?: string;
  failureReason?: string;
  bucket: string;
  /** Where the verified content is; set when the copy becomes available. */
  key?: string;
  /** VMs created while the copy was under way; they start (or fail) when it ends. */
  waitingVmIds?: Set<string>;
  createdAt: string;
  updatedAt: string;
}

export type ImageCopyView = Pick<ImageCopyItem, 'region' | 'state' | 'attempts' | 'lastError' | 'failureReason' | 'updatedAt'>;

export const toImageCopyView = ({ region, state, attempts, lastError, failureReason, updatedAt }: ImageCopyItem): ImageCopyView => ({
  region,
  state,
  attempts,
  lastError,
  failureReason,
  updatedAt,
});

/** Tries before a copy is failed, and the VMs waiting for it with it. */
export const MAX_COPY_ATTEMPTS = 3;

/** 2 s, 4 s, 8 s…: a copy that failed for a passing reason gets time before the next try. */
export const retryDelaySeconds = (attempt: number) => Math.min(900, 2 ** attempt);

/** The graph node of an image's copy in a region. */
export const imageCopyNodeId = (imageId: string, region: string) => `${imageId}-${region}`;

/** `img-3f9a0c1b2d4e-eu-west-1` → the image and the region of the copy. */
export function parseImageCopyNodeId(nodeId: string): { imageId: string; region: string } | undefined {
  const match = /^(img-[0-9a-f]{12})-(.+)$/.exec(nodeId);
  return match ? { imageId: match[1]!, region: match[2]! } : undefined;
}

/** What a launch in a region needs of its image: nothing more, or a copy under way to wait for. */
export type LaunchImage = { ready: true; image: ImageItem } | { ready: false; image: ImageItem; copy: ImageCopyItem };

/**
 * The image a VM is launched from, as seen from `region`. An image that lives in another region
 * needs a copy here: the first launch creates it (a conditional put, so concurrent launches share
 * one), and a launch after a failed copy starts it again. The copy job itself is dispatched from
 * the table's stream when the copy item appears, so no launch can leave a copy without a job.
 */
export async function imageForLaunch(
  table: string,
  tenantId: string,
  imageId: string,
  region: string,
  projectId: string,
  bucket: string,
): Promise<LaunchImage> {
  const image = await getVisibleImage(table, tenantId, imageId);
  if (image.state !== 'available') throw new ConflictError(`imageId: image ${imageId} is ${image.state}; only an available image can be launched`);
  if (image.region === region) return { ready: true, image };
  const copy = await ensureCopy(table, image, region, projectId, bucket);
  return copy.state === 'available' ? { ready: true, image } : { ready: false, image, copy };
}

async function ensureCopy(table: string, image: ImageItem, region: string, projectId: string, bucket: string): Promise<ImageCopyItem> {
  const key = keys.imageCopy(image.imageId, region);
  for (let attempt = 0; attempt < 5; attempt++) {
    const existing = await getItem<ImageCopyItem>(table, key);
    const now = new Date().toISOString();
    try {
      if (!existing) {
        const item: ImageCopyItem & Record<string, unknown> = {
          ...key,
          ...nodeAttributes(projectId, 'image-copy', imageCopyNodeId(image.imageId, region)),
          kind: 'image-copy',
          imageId: image.imageId,
          tenantId: image.tenantId,
          name: `${image.name} (${region})`,
          region,
          sourceRegion: image.region,
          state: 'copying',
          attempts: 0,
          bucket,
          createdAt: now,
          updatedAt: now,
        };
        await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
        return item;
      }
      if (existing.state === 'failed') {
        const { Attributes } = await dynamodb.send(
          new UpdateCommand({
            TableName: table,
            Key: key,
            UpdateExpression: 'SET #state = :copying, attempts = :zero, updatedAt = :now REMOVE failureReason, lastError',
            ConditionExpression: '#state = :failed',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: { ':copying': 'copying', ':failed': 'failed', ':zero': 0, ':now': now },
            ReturnValues: 'ALL_NEW',
          }),
        );
        return Attributes as ImageCopyItem;
      }
      if (existing.state === 'releasing')
        throw new ConflictError(`imageId: the copy of image ${image.imageId} in ${region} is being released; retry in a moment`);
      return existing;
    } catch (error) {
      // Another launch created or restarted it meanwhile: read again.
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
  throw new ConflictError(`imageId: the copy of image ${image.imageId} in ${region} is contended; retry`);
}

/**
 * The transaction item that makes a new VM wait for a copy: it joins the copy's waiting list
 * only while the copy is still under way. If the copy ended meanwhile the transaction fails, and
 * the launch looks at the copy again, so no VM waits for a copy that has already ended.
 */
export function waitForCopy(table: string, copy: ImageCopyItem, vmId: string): TransactItem {
  return {
    Update: {
      TableName: table,
      Key: keys.imageCopy(copy.imageId, copy.region),
      UpdateExpression: 'ADD waitingVmIds :vm',
      ConditionExpression: '#state = :copying',
      ExpressionAttributeNames: { '#state': 'state' },
      ExpressionAttributeValues: { ':vm': new Set([vmId]), ':copying': 'copying' },
    },
  };
}

export interface CopyDeps {
  /** Asks for this copy to be tried again after a delay. */
  scheduleRetry(delaySeconds: number): Promise<void>;
}

/**
 * One attempt at copying an image into `region`: S3 copies it part by part (nothing passes
 * through the function), the result is streamed through SHA-256, and only content that matches
 * the image's checksum becomes the copy. Each attempt writes its own object, so a failed or
 * duplicate attempt never touches content another attempt made available. A failure is retried
 * after a delay; past MAX_COPY_ATTEMPTS the copy fails, and its waiting VMs with it.
 */
export async function copyImage(table: string, region: string, imageId: string, deps: CopyDeps): Promise<void> {
  const copy = await getItem<ImageCopyItem>(table, keys.imageCopy(imageId, region));
  if (!copy) return;
  if (copy.state !== 'copying') return settleWaitingVms(table, copy);
  const attempt = await startAttempt(table, copy);
  if (attempt === undefined) return copyImage(table, region, imageId, deps);

  const image = await getItem<ImageItem>(table, keys.image(imageId));
  const target = { bucket: copy.bucket, key: `images/${imageId}/copy-${attempt}-${randomBytes(4).toString('hex')}` };
  let failure: string | undefined;
  let permanent = false;
  try {
    if (image?.state !== 'available') {
      permanent = true;
      throw new Error(`image ${imageId} is no longer available in ${copy.sourceRegion}`);
    }
    await copyObjectInParts({ bucket: image.bucket, key: image.key }, target, image.sizeBytes, image.partSize);
    failure = contentMismatch(image, await digestObject(target.bucket, target.key));
  } catch (error) {
    failure = (error as Error).message;
  }
  if (!failure) {
    if (!(await finishCopy(table, copy, { state: 'available', key: target.key }))) await deleteObjectIn(region, target);
    return;
  }
  await deleteObjectIn(region, target);
  if (permanent || attempt >= MAX_COPY_ATTEMPTS) {
    await finishCopy(table, copy, {
      state: 'failed',
      reason: `copying image ${imageId} from ${copy.sourceRegion} to ${region} failed after ${attempt} attempt(s): ${failure}`,
    });
    return;
  }
  await recordFailure(table, copy, failure);
  await deps.scheduleRetry(retryDelaySeconds(attempt));
}

/** Counts an attempt while the copy is still under way; undefined when it no longer is. */
async function startAttempt(table: string, copy: ImageCopyItem): Promise<number | undefined> {
  try {
    const { Attributes } = await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.imageCopy(copy.imageId, copy.region),
        UpdateExpression: 'ADD attempts :one SET updatedAt = :now',
        ConditionExpression: '#state = :copying',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':one': 1, ':copying': 'copying', ':now': new Date().toISOString() },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    return Attributes!.attempts as number;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return undefined;
    throw error;
  }
}

async function recordFailure(table: string, copy: ImageCopyItem, failure: string) {
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.imageCopy(copy.imageId, copy.region),
        UpdateExpression: 'SET lastError = :error, updatedAt = :now',
        ConditionExpression: '#state = :copying',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':error': failure, ':copying': 'copying', ':now': new Date().toISOString() },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}

/**
 * Ends a copy, then starts or fails the VMs that waited for it. False when the copy had already
 * ended (another attempt won); its waiting VMs are settled all the same, so a crash between the
 * two steps is finished by the redelivered message.
 */
async function finishCopy(
  table: string,
  copy: ImageCopyItem,
  outcome: { state: 'available'; key: string } | { state: 'failed'; reason: string },
): Promise<boolean> {
  try {
    const { Attributes } = await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.imageCopy(copy.imageId, copy.region),
        UpdateExpression: `SET #state = :to, updatedAt = :now, ${outcome.state === 'available' ? '#key = :detail REMOVE lastError' : 'failureReason = :detail'}`,
        ConditionExpression: '#state = :copying',
        ExpressionAttributeNames: { '#state': 'state', ...(outcome.state === 'available' ? { '#key': 'key' } : {}) },
        ExpressionAttributeValues: {
          ':to': outcome.state,
          ':copying': 'copying',
          ':now': new Date().toISOString(),
          ':detail': outcome.state === 'available' ? outcome.key : outcome.reason,
        },
        ReturnValues: 'ALL_NEW',
      }),
    );
    await settleWaitingVms(table, Attributes as ImageCopyItem);
    return true;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    const now = await getItem<ImageCopyItem>(table, keys.imageCopy(copy.imageId, copy.region));
    if (now) await settleWaitingVms(table, now);
    return false;
  }
}

/** Lets their hosts boot (copy available) or fails (copy failed or released) the VMs still waiting for a copy; idempotent. */
export async function settleWaitingVms(table: string, copy: ImageCopyItem, reason?: string): Promise<void> {
  if (copy.state === 'copying') return;
  const running = copy.state === 'available';
  const why = reason ?? copy.failureReason ?? `the copy of image ${copy.imageId} in ${copy.region} is ${copy.state}`;
  await Promise.all(
    [...(copy.waitingVmIds ?? [])].map(async (vmId) => {
      try {
        await dynamodb.send(
          new UpdateCommand({
            TableName: table,
            Key: keys.vm(vmId),
            // Available: still provisioning, now for its host to boot it (the change reaches the host through the stream).
            UpdateExpression: running
              ? 'SET updatedAt = :now REMOVE stateReason, waitingForImage'
              : 'SET #state = :failed, updatedAt = :now, stateReason = :why REMOVE waitingForImage',
            ConditionExpression: 'waitingForImage = :waiting AND imageId = :image',
            ...(running ? {} : { ExpressionAttributeNames: { '#state': 'state' } }),
            ExpressionAttributeValues: {
              ':waiting': true,
              ':image': copy.imageId,
              ':now': new Date().toISOString(),
              ...(running ? {} : { ':why': why, ':failed': 'failed' }),
            },
          }),
        );
      } catch (error) {
        // Deleted, or settled already.
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }),
  );
}

/** An image's copies in other regions, for the image's view. */
export async function copiesOf(table: string, imageId: string): Promise<ImageCopyItem[]> {
  return queryAll<ImageCopyItem>({
    TableName: table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :copies)',
    ExpressionAttributeValues: { ':pk': keys.image(imageId).pk, ':copies': 'COPY#' },
    ConsistentRead: true,
  });
}

/**
 * The resource graph's release of a copy: marked releasing (launches stop using it), its content
 * deleted, then its item; VMs still waiting for it fail with the reason. Every step is
 * idempotent, so a release interrupted anywhere is finished by its redelivery.
 */
export async function releaseImageCopy(table: string, imageId: string, region: string, projectId: string): Promise<void> {
  const key = keys.imageCopy(imageId, region);
  const copy = await getItem<ImageCopyItem>(table, key);
  if (!copy) return;
  if (copy.state !== 'releasing') {
    try {
      await dynamodb.send(
        new UpdateCommand({
          TableName: table,
          Key: key,
          UpdateExpression: 'SET #state = :releasing, updatedAt = :now',
          ConditionExpression: '#state = :seen',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':releasing': 'releasing', ':seen': copy.state, ':now': new Date().toISOString() },
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return releaseImageCopy(table, imageId, region, projectId);
      throw error;
    }
  }
  await settleWaitingVms(table, { ...copy, state: 'releasing' }, `the copy of image ${imageId} in ${region} was released with project ${projectId}`);
  if (copy.key) await deleteObjectIn(region, { bucket: copy.bucket, key: copy.key });
  await dynamodb
    .send(
      new DeleteCommand({
        TableName: table,
        Key: key,
        ConditionExpression: '#state = :releasing',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':releasing': 'releasing' },
      }),
    )
    .catch((error: unknown) => {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    });
}

/**
 * Whether a change to a table item starts a copy job in `region`: a copy of this region that
 * has just become `copying` (created, or restarted after a failure). Every region's stream
 * carries every region's changes; only the copy's own region acts on it.
 */
export function startsCopyJob(before: Partial<ImageCopyItem> | undefined, after: Partial<ImageCopyItem> | undefined, region: string): boolean {
  return after?.kind === 'image-copy' && after.region === region && after.state === 'copying' && before?.state !== 'copying';
}

/** An image as its owner sees it: where it was uploaded, and its copies in other regions. */
/** An image as `tenantId` may see it (its own or a public one), with its copies; operators (undefined) see the public ones. */
export async function describeImage(table: string, tenantId: string | undefined, imageId: string) {
  const image = tenantId === undefined ? await getImage(table, PUBLIC_IMAGE_OWNER, imageId) : await getVisibleImage(table, tenantId, imageId);
  return { ...toImageView(image), copies: (await copiesOf(table, imageId)).map(toImageCopyView) };
}
