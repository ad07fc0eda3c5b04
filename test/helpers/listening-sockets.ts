import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface ListeningSocket {
  pid: number;
  command: string;
  protocol: 'tcp' | 'tcp6' | 'udp' | 'udp6';
  address: string;
  port: number;
}

/** `pid` and every process below it, from /proc. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command may hold spaces and parentheses: the parent pid is the second field after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(parent, [...(parents.get(parent) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const tree: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.shift()!;
    tree.push(next);
    queue.push(...(parents.get(next) ?? []));
  }
  return tree;
}

/** `0100007F:1F90` (little-endian words) → `127.0.0.1`, 8080. */
function decode(hex: string, v6: boolean): { address: string; port: number } {
  const [addressHex, portHex] = hex.toLowerCase().split(':') as [string, string];
  const words = addressHex.match(/.{8}/g)!.map((word) => word.match(/../g)!.reverse().join(''));
  const address = v6
    ? words
        .join('')
        .match(/.{4}/g)!
        .map((group) => group.replace(/^0+(?=.)/, ''))
        .join(':')
        .replace(/(^|:)0(:0)+(:|$)/, '::')
    : words[0]!
        .match(/../g)!
        .map((byte) => parseInt(byte, 16))
        .join('.');
  return { address, port: parseInt(portHex, 16) };
}

/**
 * Every TCP socket in LISTEN state and every bound UDP socket held by these processes, read
 * from /proc (each process's socket inodes matched against its namespace's socket tables).
 */
export function listeningSockets(pids: readonly number[]): ListeningSocket[] {
  const found: ListeningSocket[] = [];
  for (const pid of pids) {
    let inodes: Set<string>;
    let command: string;
    try {
      inodes = new Set(
        readdirSync(`/proc/${pid}/fd`)
          .map((fd) => {
            try {
              return readlinkSync(`/proc/${pid}/fd/${fd}`);
            } catch {
              return '';
            }
          })
          .flatMap((target) => /^socket:\[(\d+)\]$/.exec(target)?.[1] ?? []),
      );
      command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).slice(0, 3).join(' ');
    } catch {
      continue;
    }
    for (const protocol of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
      let table: string;
      try {
        table = readFileSync(`/proc/${pid}/net/${protocol}`, 'utf8');
      } catch {
        continue;
      }
      for (const line of table.trim().split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        const [local, state, inode] = [fields[1]!, fields[3]!, fields[9]!];
        const listening = protocol.startsWith('tcp') ? state === '0A' : state === '07';
        if (listening && inodes.has(inode)) found.push({ pid, command, protocol, ...decode(local, protocol.endsWith('6')) });
      }
    }
  }
  return found;
}

/** Loopback only: 127.0.0.0/8 and ::1 (an IPv4-mapped loopback too). */
export const isLoopback = (address: string) =>
  address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.') || /^::ffff:7f/.test(address);
