import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { UsedTokens } from '../../host-agent/used-tokens.ts';

const now = 1_000_000_000_000;
const token = (jti: string, iatMs = now, lifetime = 300) => ({ jti, iat: Math.floor(iatMs / 1000), exp: Math.floor(iatMs / 1000) + lifetime });
const REPLAY = { admitted: false, reason: 'token already used: a pair token admits one flow' };

describe('UsedTokens', () => {
  const dirs: string[] = [];
  const stateFile = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'used-tokens-'));
    dirs.push(dir);
    return path.join(dir, 'state', 'used-pair-tokens.jsonl');
  };
  const opened: UsedTokens[] = [];
  /** A first start (no record yet: it holds tokens issued before it) a minute before the tokens of the test. */
  const open = (file: string, at = now - 60_000, log: string[] = []) => {
    const used = UsedTokens.open(file, (message) => log.push(message), at);
    opened.push(used);
    return used;
  };
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((used) => used.close()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('admits a token id once, and forgets it once its token has expired', async () => {
    const used = UsedTokens.inMemory();
    expect(await used.admit(token('token-a'), now)).toEqual({ admitted: true });
    expect(await used.admit(token('token-a'), now + 1000)).toEqual(REPLAY);
    expect(await used.admit(token('token-b', now, 310), now + 10_000)).toEqual({ admitted: true });
    // Past token-a's expiry it is dropped (a replay then fails as expired); token-b is still kept.
    expect(await used.admit(token('token-c', now, 600), now + 301_000)).toEqual({ admitted: true });
    expect(used.size).toBe(2);
    expect(await used.admit(token('token-b', now, 310), now + 302_000)).toEqual(REPLAY);
  });

  it('refuses two racing uses of one token: only the first is admitted', async () => {
    const used = open(stateFile());
    const results = await Promise.all(Array.from({ length: 5 }, () => used.admit(token('token-race'), now)));
    expect(results.filter((result) => result.admitted)).toHaveLength(1);
  });

  it('after a restart, refuses what the agent before it admitted (written to disk before admitting)', async () => {
    const file = stateFile();
    const first = open(file);
    expect(await first.admit(token('token-a'), now)).toEqual({ admitted: true });
    // On disk as soon as it was admitted, without a clean stop.
    expect(readFileSync(file, 'utf8')).toContain('"token-a"');

    const log: string[] = [];
    const restarted = open(file, now + 5_000, log);
    expect(log).toEqual([]);
    expect(await restarted.admit(token('token-a'), now + 6_000)).toEqual(REPLAY);
    // A token issued before the restart and never used is still good: no hold when the record is whole.
    expect(await restarted.admit(token('token-b', now + 1_000), now + 6_000)).toEqual({ admitted: true });
  });

  it('keeps only unexpired ids across a restart, and rewrites the file with those', async () => {
    const file = stateFile();
    const first = open(file);
    await first.admit(token('token-old', now - 299_000), now);
    await first.admit(token('token-new', now), now);
    const restarted = open(file, now + 2_000);
    expect(restarted.size).toBe(1);
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(await restarted.admit(token('token-new'), now + 3_000)).toEqual(REPLAY);
  });

  it('without its record (first start, lost folder), holds every token issued before the start until it expires', async () => {
    const log: string[] = [];
    const start = now + 60_000;
    const used = open(stateFile(), start, log);
    expect(log[0]).toMatch(/no record of used pair tokens .* refusing pair tokens issued before this start/);
    const before = await used.admit(token('token-before', now), start + 1_000);
    expect(before).toMatchObject({ admitted: false, reason: expect.stringMatching(/issued before this agent started/) });
    expect(await used.admit(token('token-after', start + 1_000), start + 1_500)).toEqual({ admitted: true });
  });

  it('with a damaged record, trusts none of it: holds tokens issued before the start, and still refuses the ids it could read', async () => {
    const file = stateFile();
    const first = open(file);
    await first.admit(token('token-a'), now);
    await first.close();
    writeFileSync(file, `${readFileSync(file, 'utf8')}{"jti":"token-b","ex`);
    const log: string[] = [];
    const restarted = open(file, now + 2_000, log);
    expect(log[0]).toMatch(/1 damaged line/);
    expect((await restarted.admit(token('token-c', now + 1_000), now + 2_500)).admitted).toBe(false);
    expect(await restarted.admit(token('token-a', now + 3_000), now + 3_500)).toEqual(REPLAY);
    expect(await restarted.admit(token('token-d', now + 3_000), now + 3_500)).toEqual({ admitted: true });
  });

  it('refuses a token it cannot record, and admits it once it can', async () => {
    const file = stateFile();
    const log: string[] = [];
    const used = open(file, undefined, log);
    // The file handle closed under it: the write fails.
    await used.close();
    const refused = await used.admit(token('token-a', now + 1_000), now + 1_000);
    expect(refused).toEqual({ admitted: false, reason: 'this host cannot record used tokens right now: try again' });
    expect(log.at(-1)).toMatch(/cannot record a used pair token/);
    const reopened = open(file, now + 2_000);
    expect(await reopened.admit(token('token-a', now + 3_000), now + 3_000)).toEqual({ admitted: true });
  });

  it('starts its file again once it is mostly expired ids', async () => {
    const file = stateFile();
    const used = open(file);
    for (let i = 0; i < 1100; i++) await used.admit(token(`token-${String(i).padStart(6, '0')}`, now + i * 1000, 1), now + i * 1000);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThan(200);
    expect(await used.admit(token('token-001099', now + 1_099_000, 1), now + 1_099_500)).toEqual(REPLAY);
  });
});
