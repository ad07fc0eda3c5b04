import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { candidateOf, currentKernelPackage, formatRecipe, recipeFile } from '../../local/guest-image/update-lock.ts';

describe('updating the guest image lock', () => {
  it("reads a package's candidate version and SHA-256 from apt-cache show", () => {
    const record = `Package: busybox-static\nVersion: 1:1.35.0-4+deb12u1+b1\nSHA256: ${'ab'.repeat(32)}\nSize: 1\n`;
    expect(candidateOf('busybox-static', () => record)).toEqual({ version: '1:1.35.0-4+deb12u1+b1', sha256: 'ab'.repeat(32) });
    expect(() => candidateOf('gone', () => 'Package: gone\n')).toThrow(/no candidate version with a SHA256/);
  });

  it('follows the cloud kernel metapackage to its current image package', () => {
    expect(currentKernelPackage(() => 'linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-58-cloud-amd64\n')).toBe('linux-image-6.1.0-58-cloud-amd64');
    expect(() => currentKernelPackage(() => 'linux-image-cloud-amd64\n')).toThrow(/names no kernel image package/);
  });

  it('writes the recipe back byte for byte when nothing changed', () => {
    const text = readFileSync(recipeFile, 'utf8');
    expect(formatRecipe(JSON.parse(text))).toBe(text);
  });
});
