import { nft } from './nft.ts';

const TABLE = 'stratoplane_migration';
/**
 * Where destinations listen for incoming guests: one port per migration under way to this host,
 * and `count` above it the port where the guest's disks are written to (diskPortOf).
 */
export const MIGRATION_PORTS = { first: 49_200, count: 100 } as const;

/** Where a destination takes the writes that copy a guest's disks, beside its migration port. */
export const diskPortOf = (port: number) => port + MIGRATION_PORTS.count;

/**
 * Who may connect to a port where QEMU listens for an incoming guest: only the host the guest
 * comes from. QEMU's TCP listener admits anyone who reaches it and would take any stream as the
 * guest's memory, so in the host's namespace a connection to a migration port is refused (a TCP
 * reset) unless it comes from the underlay address admitted for that port (nftables, before QEMU
 * sees it). A port is admitted before QEMU listens on it and closed once the guest arrived or the
 * migration ended. Refused, not dropped: a source whose destination gave up meanwhile must hear so
 * at once, since QEMU connects to a disk's NBD port inside its main loop, and a SYN that is never
 * answered froze the source's guest (its network, and QMP) for the two minutes of TCP's retries.
 */
export class MigrationAdmission {
  private readonly admitted = new Map<number, string>();

  private constructor(private readonly netns: string) {}

  /** Sets the namespace's table up, replacing whatever an earlier agent left (its migrations are over). */
  static async open(netns: string): Promise<MigrationAdmission> {
    const { first, count } = MIGRATION_PORTS;
    await nft(
      netns,
      `table ip ${TABLE} {}
delete table ip ${TABLE}
table ip ${TABLE} {
  set admitted { type ipv4_addr . inet_service; }
  chain input {
    type filter hook input priority filter - 10;
    tcp dport ${first}-${first + 2 * count - 1} ip saddr . tcp dport != @admitted reject with tcp reset
  }
}
`,
      'live migration',
    );
    return new MigrationAdmission(netns);
  }

  /** A free migration port, admitting `source` only, to it and to its disk port. */
  async admit(source: string): Promise<number> {
    const { first, count } = MIGRATION_PORTS;
    const port = Array.from({ length: count }, (_, index) => first + index).find((candidate) => !this.admitted.has(candidate));
    if (port === undefined) throw new Error(`all ${count} migration ports are in use`);
    this.admitted.set(port, source);
    try {
      await nft(this.netns, `add element ip ${TABLE} admitted { ${source} . ${port}, ${source} . ${diskPortOf(port)} }\n`, 'live migration');
    } catch (error) {
      this.admitted.delete(port);
      throw error;
    }
    return port;
  }

  /** Closes the port again (the guest arrived, or the migration ended). */
  async close(port: number): Promise<void> {
    const source = this.admitted.get(port);
    if (source === undefined) return;
    this.admitted.delete(port);
    await nft(this.netns, `delete element ip ${TABLE} admitted { ${source} . ${port}, ${source} . ${diskPortOf(port)} }\n`, 'live migration');
  }
}
