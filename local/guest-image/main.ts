import { parseArgs } from 'node:util';
import { ensureGuestImage, GuestImageBuildError } from './build.ts';
import { recipeFile, updateLock } from './update-lock.ts';

// npm run guest-image [-- --rebuild] [--output-dir <dir>] [--update-lock]: builds (or finds) the guest image and prints where it is.
const usage = `usage: npm run guest-image [-- --rebuild] [--output-dir <dir>] [--update-lock]
Builds the bootable guest image from the Debian packages pinned in guest/packages.json.
  --rebuild      build again even if an image of this recipe exists (same bytes, same SHA-256)
  --output-dir   where the image goes (default .local-tools/guest-image/)
  --update-lock  first pin the packages Debian serves now (current cloud kernel, candidate versions)`;
let values: { rebuild?: boolean; 'output-dir'?: string; 'update-lock'?: boolean; help?: boolean };
try {
  ({ values } = parseArgs({
    options: { rebuild: { type: 'boolean' }, 'output-dir': { type: 'string' }, 'update-lock': { type: 'boolean' }, help: { type: 'boolean' } },
  }));
} catch (error) {
  console.error(`guest-image: ${(error as Error).message}\n${usage}`);
  process.exit(2);
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}
try {
  if (values['update-lock']) {
    const changes = updateLock(recipeFile);
    console.error(
      changes.length > 0 ? `[guest-image] guest/packages.json now pins:\n  ${changes.join('\n  ')}` : '[guest-image] guest/packages.json is current',
    );
  }
  const image = await ensureGuestImage({ rebuild: values.rebuild, outputDir: values['output-dir'] });
  console.log(`guest_image path=${image.path} sha256=${image.sha256} bytes=${image.sizeBytes}`);
} catch (error) {
  if (!(error instanceof GuestImageBuildError)) throw error;
  console.error(`guest-image: ${error.message}`);
  process.exit(1);
}
