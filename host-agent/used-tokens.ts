import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';

/** What a token asks to be admitted with: its id, expiry and issue time (s since epoch). */
export interface TokenUse {
  jti: string;
  exp: number;
  iat: number;
}

export type Admission = { admitted: true } | { admitted: false; reason: string };

const REPLAY = 'token already used: a pair token admits one flow';

/**
 * Token ids already admitted, each kept until its token expires (then a replay fails on expiry
 * anyway), so memory stays bounded by the tokens issued within one lifetime.
 *
 * With a file (the agent's), every id is written there, and flushed to disk, before its token is
 * admitted, and read back at start: a restarted agent refuses what the one before it admitted.
 * Should the file be missing or damaged at start (a first start, a state folder lost or
 * restored), what it held is unknown: then every token issued before the start is refused until
 * tokens of that age have expired (a hold of one token lifetime at most).
 */
export class UsedTokens {
  /** jti → expiry (s). Tokens live equally long, so insertion order is expiry order (the file's is sorted at load). */
  private readonly used = new Map<string, number>();
  /** Tokens issued at or before this (ms) are refused: the record of what was admitted before it is lost. */
  private heldBefore = Number.NEGATIVE_INFINITY;
  private handle: Promise<FileHandle> | undefined;
  private pending: { line: string; done: (error?: Error) => void }[] = [];
  private flushing = false;
  /** Lines in the file since it was last rewritten with only live ids. */
  private lines = 0;

  private constructor(
    private readonly file: string | undefined,
    private readonly log: (message: string) => void,
  ) {}

  /** Only in memory: what a restart forgets (simulated hosts, unit tests). */
  static inMemory(): UsedTokens {
    return new UsedTokens(undefined, () => {});
  }

  /**
   * Reads the ids a previous agent admitted from `file` (kept while unexpired), rewrites it with
   * those only, and appends to it from then on. A missing or damaged file holds tokens issued
   * before now (`now`, ms) until they expire; the reason is logged.
   */
  static open(file: string, log: (message: string) => void, now = Date.now()): UsedTokens {
    const tokens = new UsedTokens(file, log);
    const held = tokens.load(now);
    if (held) {
      tokens.heldBefore = now;
      log(`${held}: refusing pair tokens issued before this start until they expire (5 min at most)`);
    }
    tokens.rewrite();
    tokens.handle = open(file, 'a', 0o600);
    // A failed open rejects the first write, which refuses its token and says why.
    tokens.handle.catch(() => {});
    return tokens;
  }

  /** Reads the file into memory; says why it cannot be trusted, or undefined when it can. */
  private load(now: number): string | undefined {
    let text: string;
    try {
      text = readFileSync(this.file!, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      return code === 'ENOENT' ? `no record of used pair tokens at ${this.file}` : `cannot read ${this.file} (${code})`;
    }
    const entries: [string, number][] = [];
    let damaged = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      try {
        const { jti, exp } = JSON.parse(line) as { jti: unknown; exp: unknown };
        if (typeof jti !== 'string' || typeof exp !== 'number') throw new Error('not an entry');
        if (exp > now / 1000) entries.push([jti, exp]);
      } catch {
        damaged++;
      }
    }
    for (const [jti, exp] of entries.sort((a, b) => a[1] - b[1])) this.used.set(jti, exp);
    // A torn last line is a token never admitted (admission waits for the flush); still, nothing damaged is trusted.
    return damaged > 0 ? `${damaged} damaged line(s) in ${this.file}` : undefined;
  }

  /** Replaces the file with the live ids, atomically (write aside, flush, rename, flush the folder). */
  private rewrite(): void {
    const file = this.file!;
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const aside = `${file}.new`;
    const fd = openSync(aside, 'w', 0o600);
    try {
      const lines = [...this.used].map(([jti, exp]) => `${JSON.stringify({ jti, exp })}\n`).join('');
      if (lines) writeSync(fd, lines);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(aside, file);
    const dir = openSync(path.dirname(file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
    this.lines = this.used.size;
  }

  /**
   * Admits a token the first time its id is seen and refuses a replay. With a file, the id is on
   * disk before this resolves; if it cannot be written the token is refused (and may be tried again).
   */
  async admit(token: TokenUse, now = Date.now()): Promise<Admission> {
    if (token.iat * 1000 <= this.heldBefore) {
      return { admitted: false, reason: 'token issued before this agent started, which kept no trustworthy record of used tokens: ask for a new one' };
    }
    for (const [id, expiry] of this.used) {
      if (expiry > now / 1000) break;
      this.used.delete(id);
    }
    if (this.used.has(token.jti)) return { admitted: false, reason: REPLAY };
    // Taken now, so a second use racing this one is refused while this one is written.
    this.used.set(token.jti, token.exp);
    if (!this.file) return { admitted: true };
    try {
      await this.persist(`${JSON.stringify({ jti: token.jti, exp: token.exp })}\n`);
      return { admitted: true };
    } catch (error) {
      this.used.delete(token.jti);
      this.log(`cannot record a used pair token in ${this.file}: ${(error as Error).message}`);
      return { admitted: false, reason: 'this host cannot record used tokens right now: try again' };
    }
  }

  /** Appends a line and flushes it to disk; lines that arrive meanwhile share the next write and flush. */
  private persist(line: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ line, done: (error) => (error ? reject(error) : resolve()) });
      if (!this.flushing) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      try {
        const handle = await this.handle!;
        await handle.write(batch.map(({ line }) => line).join(''));
        await handle.datasync();
        this.lines += batch.length;
        for (const { done } of batch) done();
      } catch (error) {
        for (const { done } of batch) done(error as Error);
      }
      // Mostly expired ids: start the file again with the live ones.
      if (this.lines > 1024 + 2 * this.used.size) await this.compact();
    }
    this.flushing = false;
  }

  private async compact(): Promise<void> {
    try {
      await (await this.handle!).close();
      this.rewrite();
    } catch (error) {
      this.log(`cannot compact ${this.file}: ${(error as Error).message}`);
    }
    this.handle = open(this.file!, 'a', 0o600);
    // A failed open rejects the next write, which refuses its tokens and says why.
    this.handle.catch(() => {});
  }

  async close(): Promise<void> {
    while (this.flushing) await new Promise((resolve) => setTimeout(resolve, 5));
    await (await this.handle?.catch(() => undefined))?.close();
  }

  get size(): number {
    return this.used.size;
  }
}
