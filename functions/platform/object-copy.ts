import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  S3Client,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { s3 } from './clients.ts';

export interface ObjectLocation {
  bucket: string;
  key: string;
}

/** Parts copied at once: enough to keep S3 busy, few enough for a Lambda's sockets. */
const PARALLEL_PARTS = 4;

/**
 * Copies an object into this region's `target` part by part (UploadPartCopy), so S3 moves the
 * bytes itself, also across regions, and objects past CopyObject's 5 GiB limit copy the same way.
 * A failed copy aborts its upload: no partial object is ever visible.
 */
export async function copyObjectInParts(source: ObjectLocation, target: ObjectLocation, sizeBytes: number, partSize: number): Promise<void> {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: target.bucket, Key: target.key, ContentType: 'application/octet-stream' }));
  try {
    const partCount = Math.ceil(sizeBytes / partSize);
    const etags: string[] = new Array(partCount);
    let next = 0;
    const worker = async () => {
      for (let index = next++; index < partCount; index = next++) {
        const first = index * partSize;
        const last = Math.min(sizeBytes, first + partSize) - 1;
        const { CopyPartResult } = await s3.send(
          new UploadPartCopyCommand({
            Bucket: target.bucket,
            Key: target.key,
            UploadId,
            PartNumber: index + 1,
            CopySource: encodeURI(`${source.bucket}/${source.key}`),
            CopySourceRange: `bytes=${first}-${last}`,
          }),
        );
        etags[index] = CopyPartResult!.ETag!;
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, partCount) }, worker));
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: target.bucket,
        Key: target.key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ PartNumber: index + 1, ETag })) },
      }),
    );
  } catch (error) {
    await s3.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: target.key, UploadId })).catch(() => undefined);
    throw error;
  }
}

const regionalClients = new Map<string, S3Client>();

/** Deletes an object in a bucket of `region` (the resource graph may release a copy from another region). */
export async function deleteObjectIn(region: string, location: ObjectLocation): Promise<void> {
  let client = regionalClients.get(region);
  if (!client) {
    client = region === (await s3.config.region()) ? s3 : new S3Client({ region, forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL) });
    regionalClients.set(region, client);
  }
  await client.send(new DeleteObjectCommand({ Bucket: location.bucket, Key: location.key }));
}
