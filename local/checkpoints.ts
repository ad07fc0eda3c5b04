import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Last processed sequence number per stream mapping and shard, kept on disk so a restarted
 * runner resumes where it stopped instead of replaying the whole stream.
 */
export class Checkpoints {
  private readonly data: Record<string, string>;

  constructor(private readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    try {
      this.data = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    } catch {
      this.data = {};
    }
  }

  get(mapping: string, shardId: string): string | undefined {
    return this.data[`${mapping}/${shardId}`];
  }

  set(mapping: string, shardId: string, sequenceNumber: string): void {
    this.data[`${mapping}/${shardId}`] = sequenceNumber;
    const temporary = `${this.file}.tmp`;
    writeFileSync(temporary, JSON.stringify(this.data));
    renameSync(temporary, this.file);
  }
}
