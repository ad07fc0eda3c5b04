import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GuestImageBuildError } from './build.ts';

/** The kernel the image follows: Debian's cloud kernel metapackage names the current ABI's image package. */
const KERNEL_METAPACKAGE = 'linux-image-cloud-amd64';

function apt(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error || result.status !== 0)
    throw new GuestImageBuildError(`${command} ${args.join(' ')}: ${(result.stderr || result.error?.message || '').trim()}`);
  return result.stdout;
}

/** Version and SHA-256 of the package apt would install now (its candidate), from `apt-cache show`. */
export function candidateOf(name: string, show = (pkg: string) => apt('apt-cache', ['show', '--no-all-versions', pkg])): { version: string; sha256: string } {
  const record = show(name);
  const version = /^Version: (.+)$/m.exec(record)?.[1];
  const sha256 = /^SHA256: ([0-9a-f]{64})$/m.exec(record)?.[1];
  if (!version || !sha256)
    throw new GuestImageBuildError(`apt-cache show ${name}: no candidate version with a SHA256 (is the package list current? apt-get update)`);
  return { version, sha256 };
}

/** The image package the kernel metapackage depends on today, from `apt-cache depends`. */
export function currentKernelPackage(depends = () => apt('apt-cache', ['depends', KERNEL_METAPACKAGE])): string {
  const name = /Depends: (linux-image-[0-9][^\s]*-cloud-amd64)/.exec(depends())?.[1];
  if (!name) throw new GuestImageBuildError(`apt-cache depends ${KERNEL_METAPACKAGE} names no kernel image package`);
  return name;
}

/**
 * Moves guest/packages.json to the packages Debian serves now (after `apt-get update`): the
 * current cloud kernel, and each package's candidate version with the SHA-256 its signed index
 * gives. The next build downloads them and checks them against it. Returns what changed.
 */
export function updateLock(recipeFile: string): string[] {
  apt('apt-get', ['update', '-qq']);
  const recipe = JSON.parse(readFileSync(recipeFile, 'utf8')) as { kernelPackage: string; packages: { name: string; version: string; sha256: string }[] };
  const kernel = currentKernelPackage();
  const changes: string[] = [];
  const names = recipe.packages.map((pinned) => (pinned.name === recipe.kernelPackage ? kernel : pinned.name));
  const packages = names.map((name) => {
    const before = recipe.packages.find((pinned) => pinned.name === name);
    const now = candidateOf(name);
    if (!before || before.version !== now.version) changes.push(`${name} ${before?.version ?? '(new)'} → ${now.version}`);
    return { name, ...now };
  });
  if (kernel !== recipe.kernelPackage) changes.push(`kernel ${recipe.kernelPackage} → ${kernel}`);
  writeFileSync(recipeFile, formatRecipe({ ...recipe, kernelPackage: kernel, packages }));
  return changes;
}

/** The file's own layout (one package per line, short lists on one line), so an update's diff shows only what changed. */
export function formatRecipe(recipe: Record<string, unknown>): string {
  const fields = Object.entries(recipe).map(([key, value]) => {
    const text = Array.isArray(value)
      ? value.every((item) => typeof item === 'string')
        ? JSON.stringify(value).replaceAll('","', '", "')
        : `[\n${value.map((item) => `    ${JSON.stringify(item).replaceAll('":', '": ').replaceAll(',"', ', "').replace(/^\{/, '{ ').replace(/\}$/, ' }')}`).join(',\n')}\n  ]`
      : JSON.stringify(value);
    return `  ${JSON.stringify(key)}: ${text}`;
  });
  return `{\n${fields.join(',\n')}\n}\n`;
}

export const recipeFile = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../guest/packages.json');
