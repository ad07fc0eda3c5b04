import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { ipv4Address, resourceId } from '#events/identifiers.ts';
import { PairTokenClaims } from '#tokens/pair-tokens.ts';

const PairEnd = z.strictObject({ localIp: ipv4Address, table: z.int(), remoteIp: ipv4Address, remoteHost: ipv4Address });

const AdmittedRecord = z.strictObject({ claims: PairTokenClaims, end: PairEnd, newConnections: z.boolean() });
export type AdmittedRecord = z.infer<typeof AdmittedRecord>;

const OpenedRecord = z.strictObject({
  vm: z.strictObject({ vmId: resourceId, ip: ipv4Address, networkId: resourceId }),
  destinationVmId: resourceId,
  end: PairEnd,
  expiresAt: z.number(),
});
export type OpenedRecord = z.infer<typeof OpenedRecord>;

const RecordsFile = z.strictObject({ admitted: z.array(AdmittedRecord), opened: z.array(OpenedRecord) });
export type PairRecordsFile = z.infer<typeof RecordsFile>;

/**
 * The network pairs this host's agent admitted and opened, kept beside its VMs' files: the kernel
 * keeps carrying them while the agent restarts (until their tokens expire), and the agent after it
 * must still renew the ones it opened and withdraw the ones revoked. Rewritten whole (a temporary
 * file renamed over it) after every change; read once at start, expired pairs left out.
 */
export class PairRecords {
  constructor(
    private readonly file: string,
    private readonly log: (message: string) => void,
  ) {}

  load(now = Date.now()): PairRecordsFile {
    if (!existsSync(this.file)) return { admitted: [], opened: [] };
    let parsed: ReturnType<typeof RecordsFile.safeParse>;
    try {
      parsed = RecordsFile.safeParse(JSON.parse(readFileSync(this.file, 'utf8')));
    } catch (error) {
      this.log(`network pairs: ${this.file} unreadable (${(error as Error).message}); the pairs before this start run until their tokens expire, unrenewed`);
      return { admitted: [], opened: [] };
    }
    if (!parsed.success) {
      this.log(
        `network pairs: ${this.file} is not a record of pairs (${parsed.error.issues[0]?.message}); the pairs before this start run until their tokens expire, unrenewed`,
      );
      return { admitted: [], opened: [] };
    }
    return {
      admitted: parsed.data.admitted.filter((record) => record.claims.exp * 1000 > now),
      opened: parsed.data.opened.filter((record) => record.expiresAt > now),
    };
  }

  save(records: PairRecordsFile): void {
    const temporary = `${this.file}.new`;
    writeFileSync(temporary, JSON.stringify(records), { mode: 0o600 });
    renameSync(temporary, this.file);
  }
}
