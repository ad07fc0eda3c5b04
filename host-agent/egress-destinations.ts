import dns from 'node:dns';
import net from 'node:net';
import tls from 'node:tls';
import type { EgressAddressPolicy } from './egress-addresses.ts';

/** Every address a name resolves to. */
export type Resolve = (hostname: string) => Promise<string[]>;

/** The host's own resolver (getaddrinfo: /etc/hosts, then DNS), as any program on the host resolves. */
export const systemResolver: Resolve = async (hostname) => (await dns.promises.lookup(hostname, { all: true, verbatim: true })).map(({ address }) => address);

/** Asks these DNS servers (`address` or `address:port`) directly, A and AAAA records. */
export function dnsServerResolver(servers: readonly string[]): Resolve {
  const resolver = new dns.promises.Resolver({ timeout: 2_000, tries: 2 });
  resolver.setServers([...servers]);
  const quiet = (error: NodeJS.ErrnoException): string[] => {
    if (error.code === dns.NODATA || error.code === dns.NOTFOUND) return [];
    throw error;
  };
  return async (hostname) => [...(await resolver.resolve4(hostname).catch(quiet)), ...(await resolver.resolve6(hostname).catch(quiet))];
}

/** Opens a TCP connection to an address that was checked; never resolves a name itself. */
export type Dial = (address: string, port: number) => Promise<net.Socket>;

export const directDial: Dial = (address, port) =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });

export class EgressRefusedError extends Error {}

/**
 * Where the bridge connects for a VM: the name is resolved once, every address it resolves to is
 * checked, and the connection goes to exactly the checked address, so a name that answers a
 * public address to the check and a private one to the connection (DNS rebinding) gets nowhere.
 * A name with any refused address is refused whole.
 */
export class EgressDestinations {
  constructor(
    private readonly policy: EgressAddressPolicy,
    private readonly resolve: Resolve,
    private readonly dial: Dial,
  ) {}

  /** The one address to connect to for `hostname` (a URL's hostname: IPv6 literals in brackets). */
  async check(hostname: string): Promise<string> {
    const literal = hostname.startsWith('[') ? hostname.slice(1, -1) : hostname;
    let addresses: string[];
    if (net.isIP(literal)) addresses = [literal];
    else {
      try {
        addresses = await this.resolve(literal);
      } catch (error) {
        throw new EgressRefusedError(`${hostname} could not be resolved: ${(error as Error).message}`);
      }
    }
    if (addresses.length === 0) throw new EgressRefusedError(`${hostname} has no address.`);
    for (const address of addresses) {
      const reason = this.policy.refusal(address);
      if (reason) throw new EgressRefusedError(`${hostname} resolves to ${address} (${reason}): the bridge never connects there.`);
    }
    return addresses[0]!;
  }

  /** A connection to the checked address; over TLS for `https:`, verified against the name. */
  async connect(target: URL, address: string): Promise<net.Socket> {
    const https = target.protocol === 'https:';
    const port = Number(target.port || (https ? 443 : 80));
    const socket = await this.dial(address, port);
    if (!https) return socket;
    const name = target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname;
    return new Promise((resolve, reject) => {
      const secure = tls.connect({ socket, servername: net.isIP(name) ? undefined : name, host: name, ALPNProtocols: ['http/1.1'] });
      secure.once('error', reject);
      secure.once('secureConnect', () => {
        secure.off('error', reject);
        resolve(secure);
      });
    });
  }
}
