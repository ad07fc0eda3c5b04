import { appendFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SpillFile } from '../../host-agent/spill-file.ts';

describe('shuffle spill file', () => {
  let dir: string;
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  const recordsOf = (chunk: number, count: number) => Array.from({ length: count }, (_, i) => ({ key: `k${chunk}`, value: `${chunk}-${i}` }));

  it('reads from any offset, across the index, and recovers what it holds on reopening, cutting off a torn chunk', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'spill-'));
    const file = path.join(dir, 'job', 'vm.records');
    const spill = await SpillFile.open(file);
    for (let chunk = 0; chunk < 15; chunk++) await spill.append(`c${chunk}`, recordsOf(chunk, 200));
    expect(spill.records).toBe(3000);
    const all = Array.from({ length: 15 }, (_, chunk) => recordsOf(chunk, 200)).flat();
    for (const offset of [0, 1, 1023, 1024, 1025, 2047, 2048, 2999]) expect(await spill.read(offset, 3)).toEqual(all.slice(offset, offset + 3));
    expect(await spill.read(3000, 10)).toEqual([]);

    // A crash mid-write leaves a chunk header with fewer records than it announced.
    const whole = spill.bytes;
    await appendFile(file, '#c15 200\n{"key":"k15","value":"15-0"}\n{"key":"k1');
    const reopened = await SpillFile.open(file);
    expect(reopened.records).toBe(3000);
    expect(reopened.has('c14')).toBe(true);
    expect(reopened.has('c15')).toBe(false);
    expect((await stat(file)).size).toBe(whole);
    expect(await reopened.read(2048, 2)).toEqual(all.slice(2048, 2050));
    await reopened.append('c15', recordsOf(15, 5));
    expect(await reopened.read(3000, 10)).toEqual(recordsOf(15, 5));
  });
});
