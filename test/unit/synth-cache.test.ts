import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { borrowBundles, lastSynthesis } from '../../local/synth-cache.ts';

describe('the runner synthesizes again only when something the app is made of changed', () => {
  let root: string;
  let outdir: string;
  let synths: number;
  const synth = () => {
    synths++;
    mkdirSync(outdir, { recursive: true });
    writeFileSync(path.join(outdir, 'app.template.json'), '{}');
  };
  /** What the runner does: synthesize unless the last synthesis is reusable. */
  const run = (settings: Record<string, unknown> = { region: 'us-east-1' }) => {
    const last = lastSynthesis(root, outdir, settings);
    if (last.reusable) return 'reused';
    synth();
    last.synthesized();
    return 'synthesized';
  };

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'synth-cache-'));
    outdir = path.join(root, '.local-run', 'cdk.out');
    synths = 0;
    mkdirSync(path.join(root, 'functions', 'api'), { recursive: true });
    writeFileSync(path.join(root, 'functions', 'api', 'handler.ts'), 'export const a = 1;');
    writeFileSync(path.join(root, 'package-lock.json'), '{}');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reuses the last synthesis when nothing changed', () => {
    expect([run(), run()]).toEqual(['synthesized', 'reused']);
    expect(synths).toBe(1);
  });

  it('synthesizes again after a source, the lock file or a setting changed, and after a new source file', () => {
    run();
    writeFileSync(path.join(root, 'functions', 'api', 'handler.ts'), 'export const a = 2;');
    expect(run()).toBe('synthesized');
    writeFileSync(path.join(root, 'package-lock.json'), '{"lockfileVersion":3}');
    expect(run()).toBe('synthesized');
    expect(run({ region: 'eu-west-1' })).toBe('synthesized');
    writeFileSync(path.join(root, 'functions', 'api', 'other.ts'), '');
    expect(run({ region: 'eu-west-1' })).toBe('synthesized');
    expect(synths).toBe(5);
  });

  it('synthesizes again after a synthesis that did not finish, and clears what it left', () => {
    // Killed while bundling: synthesized() never ran.
    expect(lastSynthesis(root, outdir, {}).reusable).toBe(false);
    synth();
    writeFileSync(path.join(outdir, 'half-bundled.js'), '');
    expect(run({})).toBe('synthesized');
    expect(synths).toBe(2);
    expect(() => writeFileSync(path.join(outdir, 'half-bundled.js'), '', { flag: 'wx' })).not.toThrow();
  });
});

describe("a region's runner takes the bundles another region's synthesis made", () => {
  it('hard-links finished bundles it lacks, and leaves those being built and its own alone', () => {
    const state = mkdtempSync(path.join(tmpdir(), 'synth-bundles-'));
    const hash = (digit: string) => digit.repeat(64);
    const other = path.join(state, 'cdk.out-us-east-1');
    const mine = path.join(state, 'cdk.out-eu-west-1');
    for (const asset of [`asset.${hash('a')}`, `asset.${hash('b')}`, `asset.${hash('c')}-building`]) {
      mkdirSync(path.join(other, asset), { recursive: true });
      writeFileSync(path.join(other, asset, 'index.mjs'), asset);
    }
    mkdirSync(path.join(mine, `asset.${hash('b')}`), { recursive: true });
    writeFileSync(path.join(mine, `asset.${hash('b')}`, 'index.mjs'), 'mine');

    expect(borrowBundles(mine)).toBe(1);
    expect(readFileSync(path.join(mine, `asset.${hash('a')}`, 'index.mjs'), 'utf8')).toBe(`asset.${hash('a')}`);
    expect(readFileSync(path.join(mine, `asset.${hash('b')}`, 'index.mjs'), 'utf8')).toBe('mine');
    expect(existsSync(path.join(mine, `asset.${hash('c')}-building`))).toBe(false);
    // A link, not a copy: the other region removing its output leaves this one whole.
    rmSync(other, { recursive: true });
    expect(readFileSync(path.join(mine, `asset.${hash('a')}`, 'index.mjs'), 'utf8')).toBe(`asset.${hash('a')}`);
    rmSync(state, { recursive: true, force: true });
  });
});
