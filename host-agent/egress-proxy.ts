import http from 'node:http';
import type { AddressInfo, Server, Socket } from 'node:net';
import type { EgressPolicy } from '#events/vm-config.ts';
import { EgressRefusedError, type EgressDestinations } from './egress-destinations.ts';
import type { LocalVm } from './forwarding-table.ts';
import { closeServer, listenLocally } from './local-server.ts';
import { TokenBucket } from './token-bucket.ts';

/** What a VM's outbound proxy asks of its agent; the VM is always the one this proxy belongs to. */
export interface EgressBackend {
  /** Where the bridge may connect, checked at connection time. */
  destinations: EgressDestinations;
  /** The VM's egress policy, or undefined when it has none (it then reaches nothing). */
  policyOf(vm: LocalVm): EgressPolicy | undefined;
  /** A short-term token of the VM's service account for one audience, if it has an account. */
  mintToken(vm: LocalVm, audience: string): string | undefined;
}

/** Headers the bridge sets; whatever a VM sends under these names is replaced, so it cannot pose as another. */
export const IDENTITY_HEADERS = { vm: 'x-stratoplane-vm-id', network: 'x-stratoplane-network-id' } as const;

const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
];
/**
 * Never forwarded from a VM: the metadata header (so no request through the bridge passes for a
 * metadata call anywhere), forwarding headers (the bridge writes its own `Forwarded`), and the
 * credentials the bridge puts in itself.
 */
const STRIPPED = ['metadata-flavor', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-stratoplane-host-id', 'authorization', 'via'];

/** Hop-by-hop headers: the fixed ones and those a `Connection` header names. */
function hopByHop(headers: http.IncomingHttpHeaders): Set<string> {
  const named = String(headers.connection ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter(Boolean);
  return new Set([...HOP_BY_HOP, ...named]);
}

/**
 * One VM's outbound proxy (HTTP, absolute-form requests as any proxy-aware client sends them).
 * A request leaves only for an origin the VM's policy allows, within its rate, and to an address
 * the bridge may reach (checked where it connects: see EgressDestinations); on the way the bridge
 * puts in the VM's identity and, for `https://` origins when the VM has a service account, a
 * short-term token for that origin (`Authorization: Bearer`, audience = the origin: never over
 * plain HTTP, where anyone on the path could take it), and forwards it. Bodies stream both ways;
 * redirects go back to the VM, whose next request is checked like any other. CONNECT tunnels are refused: through a tunnel the bridge could
 * neither see the request nor add credentials, so VMs speak plain HTTP to their bridge and the
 * bridge speaks TLS to `https://` origins.
 */
export class VmEgressProxy {
  private readonly server: http.Server;
  private bucket: TokenBucket | undefined;
  readonly stats = { forwarded: 0, refused: 0, limited: 0 };
  url = '';
  private onlyFrom: string | undefined;

  constructor(
    readonly vm: LocalVm,
    private readonly backend: EgressBackend,
    private readonly log: (message: string) => void,
  ) {
    this.server = http.createServer((request, response) =>
      this.handle(request, response).catch((error: Error) => {
        this.log(`egress ${vm.vmId}: ${error.message}`);
        if (!response.headersSent) response.writeHead(500).end();
      }),
    );
    this.server.on('connect', (_request, socket) => {
      this.stats.refused++;
      socket.end(
        'HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\n\r\nCONNECT is not offered: send http:// or https:// URLs to the bridge in plain HTTP; it adds your credentials and speaks TLS itself.\n',
      );
    });
  }

  /**
   * On a socket made on the VM's interface (the host's namespace: only the VM reaches it, and it
   * answers only the VM's own address), or on a 127.0.0.1 port of its own (development). Its port.
   */
  async listen(on?: Server): Promise<number> {
    if (on) {
      await new Promise<void>((resolve) => this.server.listen(on, resolve));
      this.onlyFrom = this.vm.ip;
    } else this.url = await listenLocally(this.server);
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse) {
    const refuse = (status: number, message: string, headers: Record<string, string> = {}) => {
      if (status !== 429) this.stats.refused++;
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      response.end(`${message}\n`);
    };
    if (this.onlyFrom && request.socket.remoteAddress?.replace(/^::ffff:/, '') !== this.onlyFrom) return refuse(403, 'Only this VM is served here.');
    let target: URL;
    try {
      target = new URL(request.url ?? '');
    } catch {
      return refuse(400, 'Send absolute URLs (http://host/path or https://host/path): this is a forward proxy.');
    }
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return refuse(400, 'Only http:// and https:// URLs.');
    const policy = this.backend.policyOf(this.vm);
    if (!policy?.allow.includes(target.origin)) return refuse(403, `${target.origin} is not in this VM's egress allow-list.`);
    const bucket = this.bucketFor(policy);
    const admitted = bucket.take();
    if (!admitted.ok) {
      this.stats.limited++;
      return refuse(429, `Over this VM's egress rate of ${policy.requestsPerSecond}/s.`, { 'retry-after': String(Math.ceil(admitted.retryAfterMs / 1000)) });
    }
    let address: string;
    try {
      address = await this.backend.destinations.check(target.hostname);
    } catch (error) {
      if (error instanceof EgressRefusedError) return refuse(403, error.message);
      throw error;
    }

    const dropped = hopByHop(request.headers);
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (dropped.has(name) || STRIPPED.includes(name) || Object.values(IDENTITY_HEADERS).includes(name as never)) continue;
      headers[name] = value;
    }
    headers.host = target.host;
    headers[IDENTITY_HEADERS.vm] = this.vm.vmId;
    headers[IDENTITY_HEADERS.network] = this.vm.networkId;
    headers.forwarded = `for="${this.vm.ip}";proto=http;by=_stratoplane-bridge`;
    headers.via = '1.1 stratoplane-bridge';
    if (target.protocol === 'https:') {
      const token = this.backend.mintToken(this.vm, target.origin);
      if (token) headers.authorization = `Bearer ${token}`;
    }

    // Plain `http` for both schemes: the connection (TLS for https://) is made to the checked address by EgressDestinations.
    const outbound = http.request(
      {
        host: target.hostname,
        port: target.port || (target.protocol === 'https:' ? 443 : 80),
        path: `${target.pathname}${target.search}`,
        method: request.method,
        headers,
        timeout: 30_000,
        createConnection: (_options: unknown, done: (error: Error | null, socket?: Socket) => void) => {
          this.backend.destinations.connect(target, address).then(
            (socket) => done(null, socket),
            (error: Error) => done(error),
          );
          return undefined;
        },
      } as http.RequestOptions,
      (upstream) => {
        this.stats.forwarded++;
        const back = { ...upstream.headers };
        for (const name of hopByHop(upstream.headers)) delete back[name];
        response.writeHead(upstream.statusCode ?? 502, back);
        // An answer the VM did not get whole says so: the origin answered, the VM's side failed.
        response.once('close', () => {
          if (!response.writableFinished)
            this.log(`egress ${this.vm.vmId} → ${target.origin}: the VM's connection ended before the answer (${upstream.statusCode}) was sent whole`);
        });
        upstream.pipe(response);
      },
    );
    outbound.on('timeout', () => outbound.destroy(new Error('upstream timed out')));
    outbound.on('error', (error) => {
      this.log(`egress ${this.vm.vmId} → ${target.origin} (${address}): ${error.message}`);
      if (!response.headersSent) {
        response.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(`${target.origin} could not be reached: ${error.message}\n`);
      } else response.destroy(error);
    });
    request.pipe(outbound);
  }

  /** One bucket per policy: a changed rate starts a fresh bucket. */
  private bucketFor(policy: EgressPolicy): TokenBucket {
    if (!this.bucket || this.bucket.rate !== policy.requestsPerSecond || this.bucket.burst !== policy.burst)
      this.bucket = new TokenBucket(policy.requestsPerSecond, policy.burst);
    return this.bucket;
  }
}
