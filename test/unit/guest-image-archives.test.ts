import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readUstar } from '../../host-agent/vm-runtime/image-bundle.ts';
import { cpioNewc, ustar } from '../../local/guest-image/archives.ts';

/** The entries of a newc archive, read field by field as the kernel's initramfs unpacker does. */
function readNewc(archive: Buffer) {
  const entries: { name: string; mode: number; size: number; rdev: [number, number]; data: Buffer }[] = [];
  let offset = 0;
  for (;;) {
    expect(archive.subarray(offset, offset + 6).toString('ascii')).toBe('070701');
    const header = offset;
    const field = (index: number) => Number.parseInt(archive.subarray(header + 6 + index * 8, header + 14 + index * 8).toString('ascii'), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = archive.subarray(offset + 110, offset + 110 + nameSize - 1).toString('utf8');
    offset += 110 + nameSize;
    offset += (4 - (offset % 4)) % 4;
    const data = archive.subarray(offset, offset + size);
    offset += size + ((4 - (size % 4)) % 4);
    if (name === 'TRAILER!!!') return entries;
    entries.push({ name, mode: field(1), size, rdev: [field(9), field(10)], data });
  }
}

describe('guest image archives', () => {
  const entries = [
    { path: 'init', kind: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\n') },
    { path: 'dev', kind: 'directory', mode: 0o755 },
    { path: 'dev/console', kind: 'chardev', mode: 0o600, major: 5, minor: 1 },
    { path: 'lib64/ld.so', kind: 'symlink', mode: 0o777, target: '/lib/ld.so' },
  ] as const;

  it('writes a newc initramfs sorted by path, with fixed owners and times, device numbers and symlink targets', () => {
    const archive = cpioNewc(entries);
    expect(cpioNewc([...entries].reverse())).toEqual(archive);
    const read = readNewc(archive);
    expect(read.map((entry) => entry.name)).toEqual(['dev', 'dev/console', 'init', 'lib64/ld.so']);
    expect(read.find((entry) => entry.name === 'dev/console')).toMatchObject({ mode: 0o020600, rdev: [5, 1] });
    expect(read.find((entry) => entry.name === 'init')).toMatchObject({ mode: 0o100755, data: Buffer.from('#!/bin/sh\n') });
    expect(read.find((entry) => entry.name === 'lib64/ld.so')?.data.toString()).toBe('/lib/ld.so');
    expect(archive.length % 4).toBe(0);
  });

  it('writes a ustar bundle GNU tar lists and extracts, and reads it back', () => {
    const files = [
      { path: 'vmlinuz', mode: 0o644, data: Buffer.alloc(1500, 7) },
      { path: 'stratoplane-image.json', mode: 0o644, data: Buffer.from('{}\n') },
    ];
    const archive = ustar(files);
    expect(ustar([...files].reverse())).toEqual(archive);
    const dir = mkdtempSync(path.join(tmpdir(), 'ustar-'));
    try {
      writeFileSync(path.join(dir, 'image.tar'), archive);
      const listing = spawnSync('tar', ['-tvf', 'image.tar'], { cwd: dir, encoding: 'utf8' });
      expect(listing.status, listing.stderr).toBe(0);
      expect(listing.stdout).toMatch(/root\/root\s+3 1970-01-01 00:00 stratoplane-image.json/);
      expect(spawnSync('tar', ['-xf', 'image.tar'], { cwd: dir }).status).toBe(0);
      expect(readFileSync(path.join(dir, 'vmlinuz'))).toEqual(files[0]!.data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect([...readUstar(archive)]).toEqual([
      ['stratoplane-image.json', files[1]!.data],
      ['vmlinuz', files[0]!.data],
    ]);
  });

  it('refuses a truncated ustar archive', () => {
    const archive = ustar([{ path: 'vmlinuz', mode: 0o644, data: Buffer.alloc(2000) }]);
    expect(() => readUstar(archive.subarray(0, 1024))).toThrow(/not a complete ustar archive/);
  });
});
