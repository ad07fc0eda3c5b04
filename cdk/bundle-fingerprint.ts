import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** What a function bundle is made of: the handlers, what they import, and the dependencies' lock. */
const BUNDLED_DIRS = ['functions', 'events', 'tokens'];
const BUNDLED_FILES = ['package-lock.json', 'tsconfig.json'];

let sources: { root: string; hash: string } | undefined;

/**
 * A function bundle's asset hash, known before bundling: every source a handler can import, the
 * lock file (esbuild's and every dependency's version) and the bundling options. CDK then skips
 * bundling when its output directory already holds `asset.<hash>` (aws-cdk-lib AssetStaging), so
 * a second region's stack, a restarted local runner or an unchanged redeploy bundles nothing
 * again; with CDK's default (the hash of the output) every synthesis bundles all 70 functions.
 */
export function bundleFingerprint(projectRoot: string, entry: string, options: unknown): string {
  if (sources?.root !== projectRoot) sources = { root: projectRoot, hash: hashSourceTree(projectRoot, BUNDLED_DIRS, BUNDLED_FILES) };
  return createHash('sha256').update(sources.hash).update('\0').update(entry).update('\0').update(JSON.stringify(options)).digest('hex');
}

/** SHA-256 over the names and contents of `files` and of every file under `dirs` (relative to `projectRoot`). */
export function hashSourceTree(projectRoot: string, dirs: readonly string[], files: readonly string[]): string {
  const hash = createHash('sha256');
  const all = [...files, ...dirs.flatMap((dir) => filesUnder(projectRoot, dir))].sort();
  for (const file of all) {
    const full = path.join(projectRoot, file);
    if (existsSync(full)) hash.update(`\0${file}\0`).update(readFileSync(full));
  }
  return hash.digest('hex');
}

function filesUnder(root: string, dir: string): string[] {
  const full = path.join(root, dir);
  if (!existsSync(full)) return [];
  return readdirSync(full, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)));
}
