import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { hashSourceTree } from '../cdk/bundle-fingerprint.ts';

/** What a synthesized app is made from: its code, its dependencies' lock, and the environment that shapes it. */
const SOURCE_DIRS = ['cdk', 'functions', 'events', 'tokens', 'local', 'host-agent', 'ops'];
const SOURCE_FILES = ['package.json', 'package-lock.json', 'tsconfig.json', 'cdk.json'];
const KEY_FILE = 'stratoplane-synth-key';

/**
 * Whether `outdir` already holds what synthesizing now would make: the same sources and settings
 * as the last synthesis there (a restarted runner, a second `npm start`). Bundling every function
 * took 95 s of this 2-core machine at a test run's start; reading a key takes milliseconds.
 * When it does not, `outdir` is emptied for a new synthesis, after which `synthesized()` records
 * its key.
 */
export function lastSynthesis(projectRoot: string, outdir: string, settings: Record<string, unknown>): { reusable: boolean; synthesized(): void } {
  const key = synthKey(projectRoot, settings);
  const keyFile = path.join(outdir, KEY_FILE);
  if (existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key) return { reusable: true, synthesized: () => {} };
  rmSync(outdir, { recursive: true, force: true });
  // Written last: an interrupted synthesis leaves no key, so the next start synthesizes again.
  return { reusable: false, synthesized: () => writeFileSync(keyFile, key) };
}

function synthKey(projectRoot: string, settings: Record<string, unknown>): string {
  return createHash('sha256')
    .update(JSON.stringify(settings))
    .update(hashSourceTree(projectRoot, SOURCE_DIRS, SOURCE_FILES))
    .digest('hex');
}

/**
 * Hard-links into `outdir` the finished bundles (`asset.<hash>`) that other cloud assemblies hold
 * (by default its sibling `cdk.out-*` directories: the other region's runner): the same functions
 * bundle under the same hashes (cdk/bundle-fingerprint.ts), and CDK skips bundling what is already
 * there. A bundle still being built is named `asset.<hash>-building` and is left alone.
 */
export function borrowBundles(outdir: string, from: readonly string[] = siblingAssemblies(outdir)): number {
  let borrowed = 0;
  for (const dir of from) {
    if (!existsSync(dir) || path.resolve(dir) === path.resolve(outdir)) continue;
    for (const asset of readdirSync(dir)) {
      if (!/^asset\.[0-9a-f]{64}$/.test(asset) || existsSync(path.join(outdir, asset))) continue;
      linkTree(path.join(dir, asset), path.join(outdir, asset));
      borrowed++;
    }
  }
  return borrowed;
}

function siblingAssemblies(outdir: string): string[] {
  const parent = path.dirname(outdir);
  if (!existsSync(parent)) return [];
  return readdirSync(parent)
    .filter((name) => name.startsWith('cdk.out-'))
    .map((name) => path.join(parent, name));
}

function linkTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.isDirectory()) linkTree(path.join(from, entry.name), path.join(to, entry.name));
    else if (entry.isFile()) linkSync(path.join(from, entry.name), path.join(to, entry.name));
  }
}
