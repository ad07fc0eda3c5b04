import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const aliases = Object.entries(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).imports as Record<string, string>).map(
  ([alias, target]) => [alias.replace('*', ''), target.replace('*', '').replace(/^\.\//, '')] as const,
);

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(relative);
    return /\.(ts|mjs)$/.test(entry.name) ? [relative] : [];
  });
}

/** Every project file a source file imports, as paths relative to the project root. */
function importsOf(file: string): string[] {
  const source = readFileSync(path.join(root, file), 'utf8');
  return [...source.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)].flatMap(([, specifier]) => {
    const alias = aliases.find(([prefix]) => specifier!.startsWith(prefix));
    if (alias) return [path.join(alias[1], specifier!.slice(alias[0].length))];
    if (specifier!.startsWith('.')) return [path.relative(root, path.resolve(path.dirname(path.join(root, file)), specifier!))];
    return [];
  });
}

/** What each top-level folder may import besides itself; test/ and scripts/ may import anything. */
const topLevel: Record<string, readonly string[]> = {
  events: [],
  tokens: ['events'],
  functions: ['events', 'tokens'],
  'host-agent': ['events', 'tokens'],
  cli: ['events', 'tokens'],
  ops: ['events', 'tokens'],
  cdk: ['events'],
  // npm start publishes the guest image with the CLI's uploader.
  local: ['cdk', 'cli', 'events', 'host-agent', 'tokens'],
  // bench:cost seeds the table directly, with the functions' own key layout (table-keys, placement, addresses).
  bench: ['events', 'functions', 'host-agent', 'local', 'tokens'],
};

/**
 * functions/ from the bottom up: AWS adapters, then table plumbing and shared rules, then the
 * trigger wrappers, then the bounded contexts, each of which may use only those before it.
 * Entry points (a context's api/, queues/, streams/, schedules/, auth/) are the top layer: they may compose
 * any context's rules, and nothing imports them.
 */
const functionLayers = [
  'platform',
  'core',
  'triggers',
  'tenancy',
  'images',
  'network',
  'compute',
  'storage',
  'identity',
  'shuffle',
  'host-sync',
  'lifecycle',
  'discovery',
];
const entryFolders = new Set(['api', 'queues', 'streams', 'schedules', 'auth']);

/** Why `file` may not import `target` (both under functions/), or undefined when it may. */
function functionsViolation(file: string, target: string): string | undefined {
  const [, fromLayer, fromSub] = file.split('/');
  const [, toLayer, toSub] = target.split('/');
  const fromRank = functionLayers.indexOf(fromLayer!);
  const toRank = functionLayers.indexOf(toLayer!);
  if (fromRank < 0) return `${fromLayer} is not a layer of functions/ (add it to functionLayers)`;
  if (toRank < 0) return `${toLayer} is not a layer of functions/`;
  if (entryFolders.has(toSub!) && target.split('/').length > 3) return 'entry points are not imported';
  if (entryFolders.has(fromSub!) && file.split('/').length > 3) return undefined;
  if (toRank > fromRank) return `${fromLayer} is below ${toLayer}`;
  return undefined;
}

describe('imports run only downward', () => {
  const files = Object.keys(topLevel).flatMap(sourceFiles);

  it('finds the tree it checks', () => {
    expect(files.filter((file) => file.startsWith('functions/')).length).toBeGreaterThan(100);
  });

  it('between top-level folders', () => {
    const violations = files.flatMap((file) => {
      const folder = file.split('/')[0]!;
      return importsOf(file)
        .map((target) => target.split('/')[0]!)
        .filter((to) => to !== folder && !topLevel[folder]!.includes(to))
        .map((to) => `${file} → ${to}/`);
    });
    expect(violations).toEqual([]);
  });

  it('between the layers and bounded contexts of functions/', () => {
    const violations = files
      .filter((file) => file.startsWith('functions/'))
      .flatMap((file) =>
        importsOf(file)
          .filter((target) => target.startsWith('functions/') && target.split('/')[1] !== file.split('/')[1])
          .flatMap((target) => {
            const reason = functionsViolation(file, target);
            return reason ? [`${file} → ${target}: ${reason}`] : [];
          }),
      );
    expect(violations).toEqual([]);
  });

  it('would catch an upward import', () => {
    expect(functionsViolation('functions/core/store.ts', 'functions/compute/vms.ts')).toBe('core is below compute');
    expect(functionsViolation('functions/compute/vms.ts', 'functions/lifecycle/resource-graph.ts')).toBe('compute is below lifecycle');
    expect(functionsViolation('functions/compute/vms.ts', 'functions/images/api/get-image.ts')).toBe('entry points are not imported');
    expect(functionsViolation('functions/compute/api/migrate-vm.ts', 'functions/shuffle/shuffle-jobs.ts')).toBeUndefined();
    expect(functionsViolation('functions/compute/vms.ts', 'functions/network/networks.ts')).toBeUndefined();
  });
});
