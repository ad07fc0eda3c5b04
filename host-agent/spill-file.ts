import { createReadStream } from 'node:fs';
import { appendFile, mkdir, truncate } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { ShuffleRecord } from '#events/shuffle.ts';

/** Every this many records the byte offset is kept, so reading from an offset skips most of the file. */
const INDEX_EVERY = 1024;

/**
 * A shuffle partition on disk: chunks appended as a header line `#<chunkId> <count>` and their
 * records, one JSON line each, in one write. The file is the truth: opening it again tells which
 * chunks arrived and how many records it holds, and a chunk cut short by a crash is cut off.
 * Memory holds only chunk ids and every 1,024th record's byte offset.
 */
export class SpillFile {
  private readonly chunks = new Set<string>();
  /** Byte offset of record `i * INDEX_EVERY`. */
  private readonly index: number[] = [0];
  records = 0;
  bytes = 0;

  private constructor(readonly file: string) {}

  static async open(file: string): Promise<SpillFile> {
    await mkdir(path.dirname(file), { recursive: true });
    const spill = new SpillFile(file);
    let pending: { chunkId: string; left: number; records: number } | undefined;
    let position = 0;
    const lines = createInterface({ input: createReadStream(file).on('error', () => undefined), crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (line.startsWith('#')) {
          const [chunkId, count] = line.slice(1).split(' ');
          pending = { chunkId: chunkId!, left: Number(count), records: 0 };
        } else if (pending && pending.left > 0) {
          spill.noteOffset(spill.records + pending.records, position);
          pending.left--;
          pending.records++;
        }
        position += Buffer.byteLength(line) + 1;
        if (pending?.left === 0) {
          spill.chunks.add(pending.chunkId);
          spill.records += pending.records;
          spill.bytes = position;
          pending = undefined;
        }
      }
    } catch {
      // No file yet: an empty partition.
    }
    if (spill.bytes < position) await truncate(file, spill.bytes);
    return spill;
  }

  has(chunkId: string): boolean {
    return this.chunks.has(chunkId);
  }

  get chunkCount(): number {
    return this.chunks.size;
  }

  async append(chunkId: string, records: readonly ShuffleRecord[]): Promise<void> {
    const parts = [Buffer.from(`#${chunkId} ${records.length}\n`)];
    let offset = this.bytes + parts[0]!.length;
    records.forEach((record, index) => {
      const line = Buffer.from(`${JSON.stringify({ key: record.key, value: record.value })}\n`);
      this.noteOffset(this.records + index, offset);
      parts.push(line);
      offset += line.length;
    });
    const buffer = Buffer.concat(parts);
    await appendFile(this.file, buffer);
    this.bytes += buffer.length;
    this.chunks.add(chunkId);
    this.records += records.length;
  }

  /** Records from `offset` on, at most `limit`: the file is read from the nearest indexed record. */
  async read(offset: number, limit: number): Promise<ShuffleRecord[]> {
    const records: ShuffleRecord[] = [];
    if (offset >= this.records) return records;
    const slot = Math.floor(offset / INDEX_EVERY);
    const start = this.index[slot];
    let position = start === undefined ? 0 : slot * INDEX_EVERY;
    const lines = createInterface({ input: createReadStream(this.file, { start: start ?? 0, end: this.bytes - 1 }), crlfDelay: Infinity });
    for await (const line of lines) {
      if (line.startsWith('#')) continue;
      if (position++ < offset) continue;
      records.push(JSON.parse(line) as ShuffleRecord);
      if (records.length >= limit) break;
    }
    lines.close();
    return records;
  }

  private noteOffset(record: number, byte: number) {
    if (record > 0 && record % INDEX_EVERY === 0) this.index[record / INDEX_EVERY] = byte;
  }
}
