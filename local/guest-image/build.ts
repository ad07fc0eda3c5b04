import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { GUEST_IMAGE_MANIFEST, type GuestImageManifest } from '#events/guest-image.ts';
import { withInstallLock } from '../install-lock.ts';
import { readUstar } from '#host-agent/vm-runtime/image-bundle.ts';
import { type ArchiveEntry, cpioNewc, ustar } from './archives.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const projectRoot = path.resolve(here, '../..');
const recipeDir = path.join(projectRoot, 'guest');
const defaultOutputDir = path.join(projectRoot, '.local-tools', 'guest-image');

interface PinnedPackage {
  name: string;
  version: string;
  sha256: string;
}

interface Recipe {
  kernelPackage: string;
  packages: PinnedPackage[];
  modules: string[];
  binaries: string[];
}

export interface GuestImage {
  /** The image file: a ustar archive of kernel, initramfs and manifest. */
  path: string;
  sha256: string;
  sizeBytes: number;
  manifest: GuestImageManifest;
}

export class GuestImageBuildError extends Error {
  override readonly name = 'GuestImageBuildError';
}

function readRecipe(): Recipe {
  return JSON.parse(readFileSync(path.join(recipeDir, 'packages.json'), 'utf8')) as Recipe;
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

function run(command: string, args: string[], options: { cwd?: string } = {}): string {
  const result = spawnSync(command, args, { cwd: options.cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw new GuestImageBuildError(`${command}: ${result.error.message}`);
  if (result.status !== 0) throw new GuestImageBuildError(`${command} ${args.join(' ')} failed (${result.status}): ${result.stderr.trim().slice(-2000)}`);
  return result.stdout;
}

/** Every file of the recipe (guest/), by relative path: what, with the builder's own code, decides the image's bytes. */
function recipeFiles(): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else files.set(path.relative(recipeDir, full), readFileSync(full));
    }
  };
  walk(recipeDir);
  return files;
}

/** A key for the recipe and builder: an image built from them is reused until either changes. */
function recipeKey(): string {
  const hash = createHash('sha256');
  for (const [name, data] of recipeFiles()) hash.update(`${name}\0${statSync(path.join(recipeDir, name)).mode & 0o111 ? 'x' : '-'}\0`).update(data);
  for (const source of ['build.ts', 'archives.ts']) hash.update(readFileSync(path.join(here, source)));
  return hash.digest('hex').slice(0, 16);
}

/** The pinned .deb files, downloaded with apt-get once into `debsDir` and checked against their SHA-256. */
function fetchPackages(packages: PinnedPackage[], debsDir: string, log: (message: string) => void): Map<string, string> {
  mkdirSync(debsDir, { recursive: true });
  const files = new Map<string, string>();
  let updated = false;
  for (const pinned of packages) {
    const file = path.join(debsDir, `${pinned.name}_${pinned.sha256.slice(0, 16)}.deb`);
    if (!existsSync(file)) {
      const scratch = mkdtempSync(path.join(debsDir, 'download-'));
      try {
        const download = () => spawnSync('apt-get', ['download', '-q', `${pinned.name}=${pinned.version}`], { cwd: scratch, encoding: 'utf8' });
        let result = download();
        if (result.status !== 0 && !updated) {
          // A fresh machine may have no package lists yet.
          log('[guest-image] apt-get update (package lists)');
          spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
          updated = true;
          result = download();
        }
        if (result.status !== 0) {
          throw new GuestImageBuildError(
            `apt-get could not download ${pinned.name}=${pinned.version} (${(result.stderr || result.error?.message || '').trim().split('\n').pop()}); if Debian no longer serves that version, pin the current one in guest/packages.json`,
          );
        }
        const [downloaded] = readdirSync(scratch).filter((name) => name.endsWith('.deb'));
        if (!downloaded) throw new GuestImageBuildError(`apt-get download ${pinned.name} left no .deb`);
        renameSync(path.join(scratch, downloaded), file);
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    }
    const actual = sha256(readFileSync(file));
    if (actual !== pinned.sha256) {
      rmSync(file, { force: true });
      throw new GuestImageBuildError(`${pinned.name}=${pinned.version}: SHA-256 ${actual}, guest/packages.json pins ${pinned.sha256}`);
    }
    files.set(pinned.name, file);
  }
  return files;
}

/** A module's dependencies, from the `depends=` string of its .modinfo section. */
function moduleDepends(file: string): string[] {
  const match = /\0depends=([^\0]*)\0/.exec(readFileSync(file).toString('latin1'));
  return match?.[1] ? match[1].split(',').filter(Boolean) : [];
}

/** The modules asked for and everything they depend on, dependencies first, as paths below lib/modules/. */
function moduleClosure(modulesRoot: string, wanted: string[]): string[] {
  const byName = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.ko')) byName.set(entry.name.slice(0, -3).replaceAll('-', '_'), full);
    }
  };
  walk(modulesRoot);
  const ordered: string[] = [];
  const visiting = new Set<string>();
  const visit = (name: string) => {
    const file = byName.get(name);
    if (!file) throw new GuestImageBuildError(`kernel module ${name} is not in the kernel package`);
    if (ordered.includes(file) || visiting.has(name)) return;
    visiting.add(name);
    for (const dependency of moduleDepends(file)) visit(dependency);
    ordered.push(file);
  };
  for (const name of wanted) visit(name);
  return ordered.map((file) => path.relative(path.dirname(modulesRoot), file));
}

/** A shared library by soname, from the extracted packages' library folders. */
function findLibrary(roots: string[], soname: string): string {
  for (const root of roots) {
    for (const dir of ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu']) {
      const candidate = path.join(root, dir, soname);
      if (existsSync(candidate)) return candidate;
    }
  }
  throw new GuestImageBuildError(`shared library ${soname} is in none of the pinned packages`);
}

function neededLibraries(file: string): string[] {
  return [...run('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((match) => match[1]!);
}

/** Builds the image into `outputDir` (reusing one built from the same recipe), and says where it is. */
export async function ensureGuestImage(options: { outputDir?: string; log?: (message: string) => void; rebuild?: boolean } = {}): Promise<GuestImage> {
  const outputDir = options.outputDir ?? defaultOutputDir;
  const log = options.log ?? console.error;
  const imagePath = path.join(outputDir, `stratoplane-guest-${recipeKey()}.tar`);
  mkdirSync(outputDir, { recursive: true });
  await withInstallLock(
    {
      dir: path.join(outputDir, 'build.lock'),
      staleAfterMs: 10 * 60_000,
      waitingMessage: '[guest-image] another process is building the guest image; waiting for it',
    },
    log,
    () => {
      if (existsSync(imagePath) && !options.rebuild) return;
      const started = Date.now();
      log('[guest-image] building the guest image from Debian packages (guest/packages.json)');
      const image = buildImage(path.join(outputDir, 'debs'), log);
      writeFileSync(`${imagePath}.partial`, image);
      renameSync(`${imagePath}.partial`, imagePath);
      // Images of earlier recipes are never booted again: one image per checkout, not one per edit.
      for (const file of readdirSync(outputDir))
        if (/^stratoplane-guest-[0-9a-f]+\.tar$/.test(file) && file !== path.basename(imagePath)) rmSync(path.join(outputDir, file));
      log(
        `[guest-image] built ${path.relative(projectRoot, imagePath)} (${(image.length / 1e6).toFixed(1)} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    },
  );
  const data = readFileSync(imagePath);
  const manifest = JSON.parse(readUstar(data).get(GUEST_IMAGE_MANIFEST)!.toString('utf8')) as GuestImageManifest;
  return { path: imagePath, sha256: sha256(data), sizeBytes: data.length, manifest };
}

function buildImage(debsDir: string, log: (message: string) => void): Buffer {
  const recipe = readRecipe();
  const debs = fetchPackages(recipe.packages, debsDir, log);
  const work = mkdtempSync(path.join(path.dirname(debsDir), 'work-'));
  try {
    const roots = new Map<string, string>();
    for (const [name, deb] of debs) {
      const root = path.join(work, name);
      run('dpkg-deb', ['-x', deb, root]);
      roots.set(name, root);
    }
    const kernelRoot = roots.get(recipe.kernelPackage)!;
    const [kernelRelease] = readdirSync(path.join(kernelRoot, 'lib/modules'));
    if (!kernelRelease) throw new GuestImageBuildError(`${recipe.kernelPackage} holds no lib/modules/<release>`);

    const entries = new Map<string, ArchiveEntry>();
    const addFile = (target: string, data: Buffer, mode: number) => {
      const parts = target.split('/');
      for (let depth = 1; depth < parts.length; depth++) {
        const dir = parts.slice(0, depth).join('/');
        if (!entries.has(dir)) entries.set(dir, { path: dir, kind: 'directory', mode: 0o755 });
      }
      entries.set(target, { path: target, kind: 'file', mode, data });
    };

    // The recipe's own files: init, inittab, the guest agent.
    for (const [name, data] of recipeFiles()) {
      if (!name.startsWith(`rootfs${path.sep}`)) continue;
      const executable = (statSync(path.join(recipeDir, name)).mode & 0o111) !== 0;
      addFile(name.slice('rootfs/'.length), data, executable ? 0o755 : 0o644);
    }
    addFile('bin/busybox', readFileSync(path.join(roots.get('busybox-static')!, 'bin/busybox')), 0o755);

    // Dynamically linked programs with every library they need, and the loader.
    const libraryRoots = [...roots.values()];
    const pending: string[] = [];
    for (const binary of recipe.binaries) {
      const found = libraryRoots.map((root) => path.join(root, binary)).find((candidate) => existsSync(candidate));
      if (!found) throw new GuestImageBuildError(`${binary} is in none of the pinned packages`);
      addFile(binary.slice(1), readFileSync(found), 0o755);
      pending.push(...neededLibraries(found));
    }
    const loader = findLibrary(libraryRoots, 'ld-linux-x86-64.so.2');
    addFile('lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', readFileSync(loader), 0o755);
    entries.set('lib64', { path: 'lib64', kind: 'directory', mode: 0o755 });
    entries.set('lib64/ld-linux-x86-64.so.2', {
      path: 'lib64/ld-linux-x86-64.so.2',
      kind: 'symlink',
      mode: 0o777,
      target: '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    });
    // The loader is executable (libc names it as NEEDED too: it is already in).
    const copied = new Set<string>(['ld-linux-x86-64.so.2']);
    while (pending.length > 0) {
      const soname = pending.pop()!;
      if (copied.has(soname)) continue;
      copied.add(soname);
      const file = findLibrary(libraryRoots, soname);
      // Sonames are often symlinks to the versioned file: the guest gets the content under the soname.
      addFile(`lib/x86_64-linux-gnu/${soname}`, readFileSync(file), 0o644);
      pending.push(...neededLibraries(file));
    }

    // Kernel modules for virtio devices, loaded by /init in this order.
    const modules = moduleClosure(path.join(kernelRoot, 'lib/modules', kernelRelease, 'kernel'), recipe.modules);
    for (const module of modules)
      addFile(`lib/modules/${kernelRelease}/${module}`, readFileSync(path.join(kernelRoot, 'lib/modules', kernelRelease, module)), 0o644);
    addFile('etc/modules.order', Buffer.from(`${modules.map((module) => `${kernelRelease}/${module}`).join('\n')}\n`), 0o644);
    for (const dir of ['dev', 'proc', 'sys', 'run', 'tmp', 'root', 'etc/dropbear', 'etc/acpi', 'sbin', 'usr/bin'])
      entries.set(dir, { path: dir, kind: 'directory', mode: 0o755 });
    // The kernel opens /dev/console for init before anything is mounted.
    entries.set('dev/console', { path: 'dev/console', kind: 'chardev', mode: 0o600, major: 5, minor: 1 });

    const initrd = gzipSync(cpioNewc([...entries.values()]), { level: 9 });
    const kernel = readFileSync(path.join(kernelRoot, 'boot', `vmlinuz-${kernelRelease}`));
    const manifest: GuestImageManifest = {
      format: 'stratoplane-kernel-initrd/1',
      architecture: 'x86_64',
      kernel: 'vmlinuz',
      initrd: 'initrd.img',
      // panic=1: a guest that cannot boot stops (QEMU runs with -no-reboot), so its VM fails with the console tail.
      cmdline: 'console=ttyS0 panic=1 loglevel=4',
      minMemoryMiB: 96,
      packages: recipe.packages.map(({ name, version }) => `${name}=${version}`),
    };
    return ustar([
      { path: GUEST_IMAGE_MANIFEST, mode: 0o644, data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) },
      { path: manifest.kernel, mode: 0o644, data: kernel },
      { path: manifest.initrd, mode: 0o644, data: initrd },
    ]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
