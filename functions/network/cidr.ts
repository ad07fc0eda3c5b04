/**
 * IPv4 arithmetic for tenant networks. Within a CIDR the first address names the network, the
 * second is the virtual gateway and the last is broadcast; VMs get the others.
 */
export function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${ip}`);
  }
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function intToIp(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export interface AddressRange {
  /** First address a VM may get. */
  first: number;
  /** Last address a VM may get. */
  last: number;
}

export function usableRange(cidr: string): AddressRange {
  const [base, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  if (!base || !Number.isInteger(prefix) || prefix < 0 || prefix > 30) {
    throw new RangeError(`not a usable IPv4 CIDR: ${cidr}`);
  }
  const size = 2 ** (32 - prefix);
  const network = Math.floor(ipToInt(base) / size) * size;
  return { first: network + 2, last: network + size - 2 };
}

export function capacityOf(cidr: string): number {
  const { first, last } = usableRange(cidr);
  return last - first + 1;
}

/** The network address itself, so `10.0.0.7/24` and `10.0.0.0/24` are the same network. */
export function normalizeCidr(cidr: string): string {
  return `${intToIp(spanOf(cidr).start)}/${cidr.split('/')[1]}`;
}

/** Every address of a CIDR, the network address and broadcast included. */
function spanOf(cidr: string): { start: number; end: number } {
  const [base, prefix] = cidr.split('/');
  const size = 2 ** (32 - Number(prefix));
  const start = Math.floor(ipToInt(base!) / size) * size;
  return { start, end: start + size - 1 };
}

/**
 * The `handedOut`-th address a network hands out fresh (1 is the first usable one), in order, or
 * undefined past its last. Fresh addresses go in order because each is reserved by an atomic
 * counter (addresses.ts): concurrent creates never race for one, so nothing is gained by drawing
 * at random.
 */
export function freshAddress(cidr: string, handedOut: number): string | undefined {
  const { first, last } = usableRange(cidr);
  if (!Number.isInteger(handedOut) || handedOut < 1 || first + handedOut - 1 > last) return undefined;
  return intToIp(first + handedOut - 1);
}

/** Whether two networks share any address: such networks cannot reach each other by routing. */
export function cidrsOverlap(a: string, b: string): boolean {
  const [x, y] = [spanOf(a), spanOf(b)];
  return x.start <= y.end && y.start <= x.end;
}
