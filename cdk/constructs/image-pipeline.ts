import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership, type IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { imagesBucketName } from '#events/naming.ts';
import { deploymentOf } from '../deployment.ts';
import { ControlPlaneFunction } from './control-plane-function.ts';
import { CONSUMER_CONCURRENCY } from './consumer-concurrency.ts';
import { acknowledgeWildcards } from '../nag.ts';
import { grantOtherRegionsKeysVia } from './keys.ts';
import type { MetadataTable } from './metadata-table.ts';
import { DeadLetterQueue, WorkQueue } from './work-queue.ts';

export interface ImagePipelineProps {
  /** Image records, and the stream whose new copy items become copy jobs. */
  metadata: MetadataTable;
  /** The region's data key: it encrypts the bucket and the queues. */
  dataKey: IKey;
  /** The control plane's other regions, whose image buckets copies are made from. */
  otherRegions: readonly string[];
}

/**
 * Where image content lives and how it becomes usable: tenants upload it straight to S3 in parts,
 * a verifier checks it against its SHA-256, and an image of another region is copied here and
 * checked the same way before any VM may start from it.
 */
export class ImagePipeline extends Construct {
  /** Image content, uploaded in parts through presigned URLs. */
  readonly bucket: Bucket;
  /** Where completed uploads wait for their checksum to be verified. */
  readonly verifyQueue: WorkQueue;

  constructor(scope: Construct, id: string, props: ImagePipelineProps) {
    super(scope, id);
    const { metadata, dataKey, otherRegions } = props;
    const { table } = metadata;
    const stack = Stack.of(this);
    const deployment = deploymentOf(this);

    // Who read, wrote or deleted which image, as S3 server access logs (SSE-S3: S3 delivers logs only to such a bucket).
    const accessLogs = new Bucket(this, 'ImagesAccessLogs', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      lifecycleRules: [{ expiration: Duration.days(365) }],
      // Kept when the stack is deleted, gone with a first deploy that rolls back (as the images bucket).
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });
    // Image content: uploaded by tenants straight to S3 in parts, checked against its SHA-256 by the verifier.
    this.bucket = new Bucket(this, 'Images', {
      bucketName: imagesBucketName(stack.account, stack.region, deployment),
      encryption: BucketEncryption.KMS,
      encryptionKey: dataKey,
      bucketKeyEnabled: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'images-bucket/',
      // Kept when the stack is deleted (tenants' images); deleted with a first deploy that rolls back, so a retry can make it again.
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });
    // Lambda's limit: images larger than what streams through SHA-256 in 15 minutes need another verifier.
    const verifyTimeout = Duration.minutes(15);
    // A job stays invisible while a function may still be working on it.
    const longJobVisibility = verifyTimeout.plus(Duration.minutes(1));
    this.verifyQueue = new WorkQueue(this, 'ImageVerifyQueue', {
      dataKey,
      deadLetters: new DeadLetterQueue(this, 'ImageVerifyDlq', { name: 'image-verify', encryptionKey: dataKey }),
      visibilityTimeout: longJobVisibility,
      attempts: 3,
    });
    const verifyImages = new ControlPlaneFunction(this, 'VerifyImages', {
      entry: 'functions/images/queues/verify-images.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.VerifyImages,
      timeout: verifyTimeout,
      settings: { tableName: table.tableName },
    });
    table.grantReadWriteData(verifyImages);
    // It only streams image content (images/<imageId>/…) through SHA-256: GetObject on that prefix, and the key to decrypt it.
    verifyImages.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [this.bucket.arnForObjects('images/*')] }));
    dataKey.grantDecrypt(verifyImages);
    acknowledgeImagePrefix(verifyImages, this.bucket, []);
    this.verifyQueue.consumedBy(verifyImages, 1);

    // Cross-region launches: an image that lives in another region is copied here, part by part
    // inside S3, then checked against its SHA-256 before any VM may start from it.
    // The handler counts attempts and fails the copy itself; the DLQ only catches what it could not record.
    const copyQueue = new WorkQueue(this, 'ImageCopyQueue', {
      dataKey,
      deadLetters: new DeadLetterQueue(this, 'ImageCopyDlq', { name: 'image-copy', encryptionKey: dataKey }),
      visibilityTimeout: longJobVisibility,
    });
    const copyImages = new ControlPlaneFunction(this, 'CopyImages', {
      entry: 'functions/images/queues/copy-images.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.CopyImages,
      timeout: verifyTimeout,
      settings: { tableName: table.tableName, imagesBucket: this.bucket.bucketName, imageCopyQueueUrl: copyQueue.queueUrl },
    });
    table.grantReadWriteData(copyImages);
    this.bucket.grantReadWrite(copyImages, 'images/*');
    acknowledgeImagePrefix(copyImages, this.bucket, ['s3:GetObject*', 's3:GetBucket*', 's3:List*', 's3:DeleteObject*', 's3:Abort*']);
    copyQueue.grantSendMessages(copyImages);
    // Sources are the other regions' image buckets, encrypted with those regions' data keys.
    if (otherRegions.length > 0) {
      const sources = otherRegions.map((region) => `arn:${stack.partition}:s3:::${imagesBucketName(stack.account, region, deployment)}/images/*`);
      copyImages.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject', 's3:GetObjectAttributes'], resources: sources }));
      acknowledgeWildcards(copyImages, "The other regions' image content, under their buckets' images/ prefix only", { resources: sources });
      grantOtherRegionsKeysVia(copyImages, 's3', otherRegions, ['kms:Decrypt']);
    }
    copyQueue.consumedBy(copyImages, 1);
    // The table's stream is the copies' outbox: a copy item that appears gets its job here.
    const imageCopyJobs = new ControlPlaneFunction(this, 'ImageCopyJobs', {
      entry: 'functions/images/streams/image-copies.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.ImageCopyJobs,
      timeout: Duration.seconds(30),
      settings: { imageCopyQueueUrl: copyQueue.queueUrl },
    });
    copyQueue.grantSendMessages(imageCopyJobs);
    metadata.streamTo(imageCopyJobs);
  }
}

/**
 * Acknowledges a function's grants on the images bucket's `images/` prefix: CDK's grants name
 * action families (`actions`), on that prefix (and for listing, the bucket) only.
 */
export function acknowledgeImagePrefix(fn: ControlPlaneFunction, bucket: IBucket, actions: readonly string[]): void {
  acknowledgeWildcards(fn, "Image content lives under the images bucket's images/ prefix (images/<imageId>/…); grants are on that prefix", {
    actions,
    resources: [bucket.arnForObjects('images/*')],
  });
}
