import type { ApiClient } from '#events/api-client.ts';
import { uploadImage } from '../../cli/image-upload.ts';
import { ensureGuestImage } from './build.ts';

/** The name the project's guest image is published under. */
export const GUEST_IMAGE_NAME = 'stratoplane-guest';

/**
 * Makes the project's guest image a public image of the control plane behind `api` (an operator's
 * client): built if it is not yet, uploaded unless a public image of the same content is already
 * available, then verified by the control plane. Returns its id.
 */
export async function publishGuestImage(api: ApiClient, log: (line: string) => void, timeoutMs = 120_000): Promise<{ imageId: string; uploaded: boolean }> {
  const built = await ensureGuestImage({ log });
  let nextToken: string | undefined;
  do {
    const page = await api.listImages({ query: { owner: 'public', limit: 100, ...(nextToken ? { nextToken } : {}) } });
    const same = page.images.find((image) => image.name === GUEST_IMAGE_NAME && image.sha256 === built.sha256 && image.state === 'available');
    if (same) return { imageId: same.imageId, uploaded: false };
    nextToken = page.nextToken;
  } while (nextToken);
  const { imageId } = await uploadImage(api, built.path, GUEST_IMAGE_NAME, () => {}, { public: true });
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const image = await api.getImage({ params: { imageId } });
    if (image.state === 'available') return { imageId, uploaded: true };
    if (image.state === 'failed') throw new Error(`the guest image ${imageId} failed verification: ${image.failureReason}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`the guest image ${imageId} was not verified within ${timeoutMs / 1000} s`);
}
