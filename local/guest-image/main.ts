import { parseArgs } from 'node:util';
import { ensureGuestImage, GuestImageBuildError } from './build.ts';

// npm run guest-image [-- --rebuild] [--output-dir <dir>]: builds (or finds) the guest image and prints where it is.
const { values } = parseArgs({ options: { rebuild: { type: 'boolean' }, 'output-dir': { type: 'string' }, help: { type: 'boolean' } } });
if (values.help) {
  console.log(
    'usage: npm run guest-image [-- --rebuild] [--output-dir <dir>]\nBuilds the bootable guest image from the Debian packages pinned in guest/packages.json.',
  );
  process.exit(0);
}
try {
  const image = await ensureGuestImage({ rebuild: values.rebuild, outputDir: values['output-dir'] });
  console.log(`guest_image path=${image.path} sha256=${image.sha256} bytes=${image.sizeBytes}`);
} catch (error) {
  if (!(error instanceof GuestImageBuildError)) throw error;
  console.error(`guest-image: ${error.message}`);
  process.exit(1);
}
