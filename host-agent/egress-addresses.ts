import net from 'node:net';

/** Why the bridge never connects to an address; undefined when it may. */
export type RefusalReason = 'loopback' | 'link-local' | 'unspecified' | 'multicast' | 'reserved' | 'host underlay' | 'private';

interface Range {
  cidr: string;
  reason: RefusalReason;
}

/** Never reachable from a VM's bridge, whatever an operator opens: these reach the host itself or nothing. */
const ALWAYS_REFUSED: Range[] = [
  { cidr: '0.0.0.0/8', reason: 'unspecified' },
  { cidr: '127.0.0.0/8', reason: 'loopback' },
  { cidr: '169.254.0.0/16', reason: 'link-local' },
  { cidr: '224.0.0.0/4', reason: 'multicast' },
  { cidr: '240.0.0.0/4', reason: 'reserved' },
  { cidr: '::/128', reason: 'unspecified' },
  { cidr: '::1/128', reason: 'loopback' },
  // IPv4-compatible addresses (deprecated): `::127.0.0.1` must not slip past the IPv4 checks.
  { cidr: '::/96', reason: 'reserved' },
  { cidr: 'fe80::/10', reason: 'link-local' },
  { cidr: 'ff00::/8', reason: 'multicast' },
];

/** Refused unless the deployment's operator opens them (the stack's egressOpenCidrs). */
const PRIVATE: Range[] = [
  { cidr: '10.0.0.0/8', reason: 'private' },
  { cidr: '172.16.0.0/12', reason: 'private' },
  { cidr: '192.168.0.0/16', reason: 'private' },
  { cidr: '100.64.0.0/10', reason: 'private' },
  { cidr: '198.18.0.0/15', reason: 'private' },
  { cidr: 'fc00::/7', reason: 'private' },
  { cidr: 'fec0::/10', reason: 'private' },
];

function blockList(ranges: readonly { cidr: string }[]): net.BlockList {
  const list = new net.BlockList();
  for (const { cidr } of ranges) {
    const [address, prefix] = cidr.split('/') as [string, string];
    list.addSubnet(address, Number(prefix), net.isIPv6(address) ? 'ipv6' : 'ipv4');
  }
  return list;
}

const ALWAYS_REFUSED_LISTS = ALWAYS_REFUSED.map(({ cidr, reason }) => ({ reason, list: blockList([{ cidr }]) }));
const PRIVATE_LIST = blockList(PRIVATE);
const CARRIES_IPV4 = blockList([{ cidr: '::ffff:0:0/96' }, { cidr: '64:ff9b::/96' }]);

/** An IPv6 address that carries an IPv4 one (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) is judged as that IPv4 address. */
export function embeddedIpv4(address: string): string | undefined {
  if (!net.isIPv6(address) || !CARRIES_IPV4.check(address, 'ipv6')) return undefined;
  const groups = ipv6Groups(address);
  const high = groups[6]!;
  const low = groups[7]!;
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** An IPv6 address's eight 16-bit groups, `::` expanded and a dotted IPv4 tail read as two groups. */
export function ipv6Groups(address: string): number[] {
  let text = address;
  // A dotted tail (`::ffff:127.0.0.1`) becomes two hex groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, -dotted[1]!.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((group) => parseInt(group, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  return tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
}

/**
 * Which addresses a VM's bridge may connect to: never the host's own or other hosts' (loopback,
 * link-local — 169.254.169.254 included —, unspecified, multicast, reserved, any host's underlay
 * address), and private ranges only where the operator opened them for the deployment.
 */
export class EgressAddressPolicy {
  private opened = new net.BlockList();
  private underlay = new Set<string>();

  /** Private ranges the operator opened (CIDRs). An opened range never opens what is always refused. */
  openPrivateRanges(cidrs: readonly string[]): void {
    this.opened = blockList(cidrs.map((cidr) => ({ cidr })));
  }

  /** Every host's underlay address the agent knows of (its own and its peers'). */
  setUnderlayAddresses(addresses: Iterable<string>): void {
    this.underlay = new Set(addresses);
  }

  /** Why `address` is refused, or undefined when the bridge may connect to it. */
  refusal(address: string): RefusalReason | undefined {
    const v4 = embeddedIpv4(address);
    if (v4) return this.refusal(v4);
    const family = net.isIPv6(address) ? 'ipv6' : net.isIPv4(address) ? 'ipv4' : undefined;
    if (!family) return 'reserved';
    for (const { reason, list } of ALWAYS_REFUSED_LISTS) if (list.check(address, family)) return reason;
    if (this.underlay.has(address)) return 'host underlay';
    if (PRIVATE_LIST.check(address, family) && !this.opened.check(address, family)) return 'private';
    return undefined;
  }
}
