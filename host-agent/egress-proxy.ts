import http from 'node:http';
import https from 'node:https';
import type { EgressPolicy } from '#events/vm-config.ts';
import type { LocalVm } from './forwarding-table.ts';
import { closeServer, listenLocally } from './local-server.ts';
import { TokenBucket } from './token-bucket.ts';

/** What a VM's outbound proxy asks of its agent; the VM is always the one this proxy belongs to. */
export interface EgressBackend {
  hostId: string;
  /** The VM's egress policy, or undefined when it has none (it then reaches nothing). */
  policyOf(vm: LocalVm): EgressPolicy | undefined;
  /** A short-term token of the VM's service account for one audience, if it has an account. */
  mintToken(vm: LocalVm, audience: string): string | undefined;
}

/** Headers the bridge sets; whatever a VM sends under these names is replaced, so it cannot pose as another. */
export const IDENTITY_HEADERS = { vm: 'x-stratoplane-vm-id', network: 'x-stratoplane-network-id', host: 'x-stratoplane-host-id' } as const;

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/**
 * One VM's outbound proxy (HTTP, absolute-form requests as any proxy-aware client sends them).
 * A request leaves only for an origin the VM's policy allows and within its rate; on the way the
 * bridge puts in the VM's identity and, when the VM has a service account, a short-term token
 * for that origin (`Authorization: Bearer`, audience = the origin), and forwards it over HTTP or
 * HTTPS. Bodies stream both ways. CONNECT tunnels are refused: through a tunnel the bridge could
 * neither see the request nor add credentials, so VMs speak plain HTTP to their bridge and the
 * bridge speaks TLS to `https://` origins.
 */
export class VmEgressProxy {
  private readonly server: http.Server;
  private bucket: TokenBucket | undefined;
  readonly stats = { forwarded: 0, refused: 0, limited: 0 };
  url = '';

  constructor(
    readonly vm: LocalVm,
    private readonly backend: EgressBackend,
    private readonly log: (message: string) => void,
  ) {
    this.server = http.createServer((request, response) => this.handle(request, response));
    this.server.on('connect', (_request, socket) => {
      this.stats.refused++;
      socket.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\n\r\nCONNECT is not offered: send http:// or https:// URLs to the bridge in plain HTTP; it adds your credentials and speaks TLS itself.\n');
    });
  }

  async listen(): Promise<string> {
    this.url = await listenLocally(this.server);
    return this.url;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private handle(request: http.IncomingMessage, response: http.ServerResponse) {
    const refuse = (status: number, message: string, headers: Record<string, string> = {}) => {
      response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      response.end(`${message}\n`);
    };
    let target: URL;
    try {
      target = new URL(request.url ?? '');
    } catch {
      this.stats.refused++;
      return refuse(400, 'Send absolute URLs (http://host/path or https://host/path): this is a forward proxy.');
    }
    const policy = this.backend.policyOf(this.vm);
    if (!policy || !policy.allow.includes(target.origin)) {
      this.stats.refused++;
      return refuse(403, `${target.origin} is not in this VM's egress allow-list.`);
    }
    const bucket = this.bucketFor(policy);
    const admitted = bucket.take();
    if (!admitted.ok) {
      this.stats.limited++;
      return refuse(429, `Over this VM's egress rate of ${policy.requestsPerSecond}/s.`, { 'retry-after': String(Math.ceil(admitted.retryAfterMs / 1000)) });
    }

    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (HOP_BY_HOP.includes(name) || Object.values(IDENTITY_HEADERS).includes(name as never) || name === 'authorization') continue;
      headers[name] = value;
    }
    headers.host = target.host;
    headers[IDENTITY_HEADERS.vm] = this.vm.vmId;
    headers[IDENTITY_HEADERS.network] = this.vm.networkId;
    headers[IDENTITY_HEADERS.host] = this.backend.hostId;
    const token = this.backend.mintToken(this.vm, target.origin);
    if (token) headers.authorization = `Bearer ${token}`;
    headers.via = `1.1 stratoplane-bridge`;

    const client = target.protocol === 'https:' ? https : http;
    const outbound = client.request(target, { method: request.method, headers, timeout: 30_000 }, (upstream) => {
      this.stats.forwarded++;
      const back = { ...upstream.headers };
      for (const name of HOP_BY_HOP) delete back[name];
      response.writeHead(upstream.statusCode ?? 502, back);
      upstream.pipe(response);
    });
    outbound.on('timeout', () => outbound.destroy(new Error('upstream timed out')));
    outbound.on('error', (error) => {
      this.log(`egress ${this.vm.vmId} → ${target.origin}: ${error.message}`);
      if (!response.headersSent) refuse(502, `${target.origin} could not be reached: ${error.message}`);
      else response.destroy(error);
    });
    request.pipe(outbound);
  }

  /** One bucket per policy: a changed rate starts a fresh bucket. */
  private bucketFor(policy: EgressPolicy): TokenBucket {
    if (!this.bucket || this.bucket.rate !== policy.requestsPerSecond || this.bucket.burst !== policy.burst) this.bucket = new TokenBucket(policy.requestsPerSecond, policy.burst);
    return this.bucket;
  }
}
