import { z } from 'zod';

/** Largest image accepted: 1 TiB, at most 10,000 parts as S3 multipart allows. */
export const MAX_IMAGE_BYTES = 1024 ** 4;

/** The owner of public images (those every tenant may describe and launch, as AWS's public AMIs): operators upload them. */
export const PUBLIC_IMAGE_OWNER = 'public';

export const CreateImageRequest = z.strictObject({
  name: z.string().min(1).max(128),
  sizeBytes: z.int().min(1).max(MAX_IMAGE_BYTES),
  /** SHA-256 of the whole content, hex: the image becomes available only if what arrives matches. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
  /** Operators only: an image every tenant may launch (a tenant that sends it is refused, 403). */
  public: z
    .boolean()
    .optional()
    .describe('Operators only (scope operator): an image every tenant may describe and launch. Tenants that send it are refused (403).'),
});
export type CreateImageRequest = z.infer<typeof CreateImageRequest>;

export const CompleteImageUploadRequest = z.strictObject({
  parts: z
    .array(z.strictObject({ partNumber: z.int().min(1).max(10_000), etag: z.string().min(1).max(128) }))
    .min(1)
    .max(10_000)
    .meta({
      description:
        'Every part of the upload, 1 to the number of parts created answered, each once, with the ETag S3 answered for its PUT; anything else is refused (400).',
    }),
});
export type CompleteImageUploadRequest = z.infer<typeof CompleteImageUploadRequest>;

/** Work for the verifier: stream the uploaded content and check it against the declared checksum. */
export const VerifyImageMessage = z.strictObject({ imageId: z.string().min(1).max(64) });
export type VerifyImageMessage = z.infer<typeof VerifyImageMessage>;

/** Work for the copier of a region: copy the image's content into this region and verify it. */
export const CopyImageMessage = z.strictObject({ imageId: z.string().min(1).max(64) });
export type CopyImageMessage = z.infer<typeof CopyImageMessage>;
