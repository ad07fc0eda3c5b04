import { z } from 'zod';

/**
 * A bootable Stratoplane guest image: a ustar archive holding a kernel, an initramfs and this
 * manifest (`stratoplane-image.json`). The host agent boots it with QEMU's `-kernel`/`-initrd`,
 * appending the VM's own settings (`stratoplane.ip=…`) to the manifest's command line.
 */
export const GUEST_IMAGE_MANIFEST = 'stratoplane-image.json';

export const GuestImageManifest = z.strictObject({
  format: z.literal('stratoplane-kernel-initrd/1'),
  architecture: z.literal('x86_64'),
  /** Archive member names. */
  kernel: z.string().regex(/^[\w.-]+$/),
  initrd: z.string().regex(/^[\w.-]+$/),
  /** Kernel command line the image needs; the host agent adds the VM's settings after it. */
  cmdline: z.string().max(1024),
  /** The smallest guest RAM the image boots in, MiB. */
  minMemoryMiB: z.number().int().min(16),
  /** What it was built from: Debian package name=version, for provenance. */
  packages: z.array(z.string()).max(100),
});
export type GuestImageManifest = z.infer<typeof GuestImageManifest>;
