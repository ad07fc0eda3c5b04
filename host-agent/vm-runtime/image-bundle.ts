import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GUEST_IMAGE_MANIFEST, GuestImageManifest } from '#events/guest-image.ts';
import type { GuestBoot } from './vm-runtime.ts';

export class ImageBundleError extends Error {
  override readonly name = 'ImageBundleError';
}

/** The files of a ustar archive written by `ustar` (or any plain-file ustar archive). */
export function readUstar(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let offset = 0;
  while (offset + 512 <= archive.length) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const name = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = Number.parseInt(header.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(header[156]!);
    if (Number.isNaN(size) || offset + 512 + size > archive.length) throw new ImageBundleError('not a complete ustar archive');
    if (type === '0' || type === '\0') files.set(name, archive.subarray(offset + 512, offset + 512 + size));
    offset += 512 + size + ((512 - (size % 512)) % 512);
  }
  return files;
}

/**
 * A guest image's kernel and initramfs, written into `dir` for QEMU, with the manifest's command
 * line. Anything that is not a well-formed Stratoplane image is refused with the reason (it came
 * from a tenant: nothing in it is trusted beyond what the schema allows).
 */
export function unpackImageBundle(bundle: Buffer, dir: string): { boot: GuestBoot; manifest: GuestImageManifest } {
  let files: Map<string, Buffer>;
  try {
    files = readUstar(bundle);
  } catch (error) {
    throw new ImageBundleError(`not a bootable image: ${(error as Error).message}`);
  }
  const manifestFile = files.get(GUEST_IMAGE_MANIFEST);
  if (!manifestFile) throw new ImageBundleError(`not a bootable image: no ${GUEST_IMAGE_MANIFEST} in it`);
  let parsed: ReturnType<typeof GuestImageManifest.safeParse>;
  try {
    parsed = GuestImageManifest.safeParse(JSON.parse(manifestFile.toString('utf8')));
  } catch {
    throw new ImageBundleError(`not a bootable image: ${GUEST_IMAGE_MANIFEST} is not JSON`);
  }
  if (!parsed.success)
    throw new ImageBundleError(`not a bootable image: ${GUEST_IMAGE_MANIFEST}: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  const manifest = parsed.data;
  const kernel = files.get(manifest.kernel);
  const initrd = files.get(manifest.initrd);
  if (!kernel || !initrd)
    throw new ImageBundleError(`not a bootable image: the manifest names ${manifest.kernel} and ${manifest.initrd}, the archive lacks one`);
  const boot = { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), cmdline: manifest.cmdline };
  writeFileSync(boot.kernel, kernel, { mode: 0o600 });
  writeFileSync(boot.initrd, initrd, { mode: 0o600 });
  return { boot, manifest };
}
