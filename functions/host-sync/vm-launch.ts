import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { LaunchDisk, VmLaunchSpec } from '#events/vm-config.ts';
import { DEFAULT_MACHINE_TYPE, MACHINE_TYPES } from '#events/vm-lifecycle.ts';
import { s3 } from '../platform/clients.ts';
import { getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import type { StoredVm } from '../compute/vms.ts';
import type { ImageCopyItem } from '../images/image-copies.ts';
import type { ImageItem } from '../images/images.ts';
import type { DiskItem } from '../storage/disks.ts';

/** How long a host has to start fetching a VM's image through the URL it is given. */
export const IMAGE_URL_SECONDS = 15 * 60;

/** Where an image's verified content is in a region: the image itself there, or its available copy. */
export interface ImageObject {
  imageId: string;
  sha256: string;
  sizeBytes: number;
  bucket: string;
  key: string;
}

/** A VM's name as a host name: lowercase letters, digits and dashes, at most 63; its id when nothing is left. */
export function hostnameOf(name: string, vmId: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return cleaned || vmId;
}

/** The disks attached to the VM, as its host plugs them in: those whose own record says so (a detach in flight is not), by disk id. */
export function launchDisksOf(vmId: string, disks: readonly (DiskItem | undefined)[]): LaunchDisk[] {
  return disks
    .filter((disk): disk is DiskItem => disk?.state === 'attached' && disk.attachedTo === vmId)
    .map(({ diskId, poolId, sizeGiB, iops, throughputMiBps, slot }) => ({
      diskId,
      poolId,
      sizeGiB,
      iops,
      throughputMiBps,
      ...(slot !== undefined ? { slot } : {}),
    }))
    .sort((a, b) => (a.diskId < b.diskId ? -1 : 1));
}

/**
 * How the VM's host runs it, or undefined while it cannot boot yet (its image's copy into the
 * region is not verified). `image` is where its image is in this region; `disks`, its attached disks.
 */
export function launchSpecOf(vm: StoredVm, image: (ImageObject & { url: string }) | undefined, disks: readonly LaunchDisk[] = []): VmLaunchSpec | undefined {
  if (vm.waitingForImage) return undefined;
  // Failed before any host ran it (its image's copy failed): it stays failed, even if a later copy succeeds, until its owner starts it.
  if (vm.state === 'failed' && vm.stateObservedAt === undefined) return undefined;
  if (vm.imageId && !image) return undefined;
  const machineType = vm.machineType ?? DEFAULT_MACHINE_TYPE;
  return {
    powerState: vm.powerState ?? 'running',
    bootGeneration: vm.bootGeneration ?? 0,
    machineType,
    ...MACHINE_TYPES[machineType],
    hostname: hostnameOf(vm.name, vm.vmId),
    ...(image ? { image: { imageId: image.imageId, sha256: image.sha256, sizeBytes: image.sizeBytes, url: image.url } } : {}),
    ...(disks.length > 0 ? { disks: [...disks] } : {}),
  };
}

/** Where the VM's image is in `region`, if it is there and verified. */
export async function imageObjectIn(table: string, imageId: string, region: string): Promise<ImageObject | undefined> {
  const image = await getItem<ImageItem>(table, keys.image(imageId));
  if (image?.state !== 'available') return undefined;
  const base = { imageId, sha256: image.sha256, sizeBytes: image.sizeBytes };
  if (image.region === region) return { ...base, bucket: image.bucket, key: image.key };
  const copy = await getItem<ImageCopyItem>(table, keys.imageCopy(imageId, region));
  return copy?.state === 'available' && copy.key ? { ...base, bucket: copy.bucket, key: copy.key } : undefined;
}

/** A GET URL for the image's content that the host can use without AWS credentials of its own, for IMAGE_URL_SECONDS. */
export const presignImageUrl = (object: ImageObject): Promise<string> =>
  getSignedUrl(s3, new GetObjectCommand({ Bucket: object.bucket, Key: object.key }), { expiresIn: IMAGE_URL_SECONDS });
