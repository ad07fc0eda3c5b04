import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { unpackImageBundle } from '../../host-agent/vm-runtime/image-bundle.ts';
import type { GuestBoot } from '../../host-agent/vm-runtime/qemu-runtime.ts';
import { ensureGuestImage } from '../../local/guest-image/build.ts';

/** Why real guests cannot run here, or undefined when QEMU is installed. */
export function qemuUnavailableReason(): string | undefined {
  const probe = spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return 'qemu-system-x86_64 is not installed (.ci/run installs QEMU 10 from bookworm-backports)';
  return undefined;
}

/** The project's guest image (built once, cached), unpacked into a fresh folder for QEMU. */
export async function guestBoot(): Promise<GuestBoot> {
  const image = await ensureGuestImage({ log: () => {} });
  return unpackImageBundle(readFileSync(image.path), mkdtempSync(path.join(tmpdir(), 'guest-boot-'))).boot;
}
