import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { nft } from './nft.ts';

const run = promisify(execFile);
const TABLE = 'stratoplane_antispoof';

/** What one VM interface may send as: its VM's address and MAC. */
export interface AllowedSource {
  device: string;
  ip: string;
  mac: string;
}

/**
 * A VM's MAC, from the name of its host-side interface: both come from the VM id's SHA-256 (the
 * interface is `sp` and its first six bytes in hex, the MAC `02:` and its first five), so the data
 * plane knows what every local interface's guest may send as without being told.
 */
export function macOfInterface(device: string): string {
  const hex = /^sp([0-9a-f]{12})$/.exec(device)?.[1];
  if (!hex) throw new Error(`not a VM interface: ${device}`);
  return ['02', ...hex.slice(0, 10).match(/../g)!].join(':');
}

const key = ({ device, ip, mac }: AllowedSource) => `"${device}" . ${ip} . ${mac}`;

/**
 * Anti-spoofing on every VM interface of a host (as a cloud's virtual switch does): in the host's
 * namespace, a packet that comes in on a VM's interface passes only if its source IPv4 address and
 * source MAC are that VM's, and an ARP packet only if its sender address and MAC are; anything else
 * from a VM interface (another VM's address or MAC, IPv6, which the VPC does not carry) is dropped
 * and counted, before routing, NAT or the metadata redirect see it. Kept as two nftables sets of
 * (interface, address, MAC): one for IP (inet family, prerouting at raw priority), one for ARP.
 *
 * An earlier agent's entries stay while a new one starts, so its VMs keep sending; those no VM
 * needs any more go once the agent knows the host's whole state (`prune`).
 */
export class AntiSpoofing {
  private applied = new Map<string, AllowedSource>();
  /** Entries found at open, kept until a complete state says which are still needed. */
  private leftovers = new Map<string, AllowedSource>();

  private constructor(private readonly netns: string) {}

  static async open(netns: string): Promise<AntiSpoofing> {
    const filter = new AntiSpoofing(netns);
    // One transaction: the tables and sets are made if missing (their entries kept), the rules replaced.
    await filter.nft(`table inet ${TABLE} {
  set sources { type ifname . ipv4_addr . ether_addr; }
  chain prerouting { type filter hook prerouting priority raw; policy accept; }
  chain from_vm { }
}
table arp ${TABLE} {
  set sources { type ifname . ipv4_addr . ether_addr; }
  chain input { type filter hook input priority filter; policy accept; }
  chain from_vm { }
}
flush chain inet ${TABLE} prerouting
flush chain inet ${TABLE} from_vm
flush chain arp ${TABLE} input
flush chain arp ${TABLE} from_vm
add rule inet ${TABLE} prerouting iifname "sp*" jump from_vm
add rule inet ${TABLE} from_vm iifname . ip saddr . ether saddr @sources accept
add rule inet ${TABLE} from_vm counter drop
add rule arp ${TABLE} input iifname "sp*" jump from_vm
add rule arp ${TABLE} from_vm iifname . arp saddr ip . arp saddr ether @sources accept
add rule arp ${TABLE} from_vm counter drop
`);
    for (const source of await filter.listed()) filter.leftovers.set(key(source), source);
    return filter;
  }

  /** Makes the allowed sources `wanted`; with `prune`, also drops what an earlier agent left and nothing wants. */
  async sync(wanted: readonly AllowedSource[], prune: boolean): Promise<void> {
    const next = new Map(wanted.map((source) => [key(source), source]));
    const add = [...next.keys()].filter((entry) => !this.applied.has(entry));
    const remove = [...this.applied.keys()].filter((entry) => !next.has(entry));
    if (prune) remove.push(...[...this.leftovers.keys()].filter((entry) => !next.has(entry) && !this.applied.has(entry)));
    if (add.length === 0 && remove.length === 0) {
      if (prune) this.leftovers.clear();
      return;
    }
    const lines = [
      ...remove.flatMap((entry) => [`delete element inet ${TABLE} sources { ${entry} }`, `delete element arp ${TABLE} sources { ${entry} }`]),
      ...add.flatMap((entry) => [`add element inet ${TABLE} sources { ${entry} }`, `add element arp ${TABLE} sources { ${entry} }`]),
    ];
    try {
      await this.nft(`${lines.join('\n')}\n`);
    } catch (error) {
      // Something else changed the sets (an entry to delete is gone): start again from what is there.
      this.applied = new Map();
      this.leftovers = new Map((await this.listed()).map((source) => [key(source), source]));
      if (prune || remove.length > 0) return this.sync(wanted, true);
      throw error;
    }
    this.applied = next;
    if (prune) this.leftovers.clear();
    else for (const entry of next.keys()) this.leftovers.delete(entry);
  }

  private async listed(): Promise<AllowedSource[]> {
    const { stdout } = await run('ip', ['netns', 'exec', this.netns, 'nft', '-j', 'list', 'set', 'inet', TABLE, 'sources']);
    const items = (JSON.parse(stdout) as { nftables: { set?: { elem?: { concat: [string, string, string] }[] } }[] }).nftables;
    return items.flatMap((item) => item.set?.elem ?? []).map(({ concat: [device, ip, mac] }) => ({ device, ip, mac }));
  }

  private nft(script: string): Promise<void> {
    return nft(this.netns, script, "VMs' anti-spoofing");
  }
}
