import http from 'node:http';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { ShuffleRecord } from '#events/shuffle.ts';
import type { LocalVm } from './forwarding-table.ts';
import { PairRefusal } from './pair-refusal.ts';
import type { PairView } from './pair-requests.ts';
import { ShuffleError } from './shuffle-service.ts';
import { closeServer, listenLocally } from './local-server.ts';
import { readSmallBody } from './request-body.ts';
import { TokenBucket } from './token-bucket.ts';

/** Header every metadata request must carry, as on GCE: a page fetched through SSRF cannot set it. */
export const METADATA_FLAVOR = 'Stratoplane';
export class MetadataError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** With a 429: when to ask again, in seconds (`Retry-After`). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** A rate (per second) and a burst, for one kind of request of one VM. */
export interface RateLimit {
  rate: number;
  burst: number;
}

/**
 * What one VM may ask of its metadata server, past which it is answered 429 with `Retry-After`:
 * writes (host-key uploads, and any other write) cost a control-plane call and a KMS signature
 * each, so a VM gets a boot's worth (a key per type) and then one every 6 s; tokens are minted on
 * the host without any call, but each is an ES256 signature of the agent's.
 */
export const METADATA_RATE_LIMITS: { writes: RateLimit; tokens: RateLimit } = {
  writes: { rate: 1 / 6, burst: 10 },
  tokens: { rate: 20, burst: 100 },
};

/** What a VM's metadata server asks of its agent; the VM is always the one this server belongs to. */
export interface MetadataBackend {
  publishHostKey(vm: LocalVm, keyType: string, keyData: string): Promise<void>;
  /** The VM's custom metadata (`instance/attributes/`). */
  attributesOf(vm: LocalVm): Record<string, string> | undefined;
  /** The service account attached to the VM, if any. */
  serviceAccountOf(vm: LocalVm): string | undefined;
  /** A short-term token for the VM's service account, for one audience. */
  mintToken(vm: LocalVm, audience: string): string | undefined;
  /** The host's shuffle service, which the VM reaches as a worker of its jobs. */
  shuffle: ShuffleBridge;
  /** Network pairs from this VM to VMs of other networks (pair-requests.ts). */
  pairs: PairBridge;
}

/** What a VM does with its network pairs, through its bridge. */
export interface PairBridge {
  open(vm: LocalVm, destinationVmId: string): Promise<PairView>;
  close(vm: LocalVm, destinationVmId: string): Promise<void>;
}

/** What a worker VM does in a shuffle job, through its bridge. */
export interface ShuffleBridge {
  send(vmId: string, jobId: string, batchId: string, records: readonly ShuffleRecord[]): Promise<{ accepted: number; duplicate: boolean }>;
  close(vmId: string, jobId: string): Promise<{ sent: number }>;
  read(vmId: string, jobId: string, offset: number, limit: number): Promise<{ records: ShuffleRecord[]; nextOffset: number; received: number }>;
}

/** A batch of records a VM sends at once: NDJSON, at most this large. */
const MAX_SHUFFLE_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * One VM's metadata server. It answers only its own VM: which VM a request is about comes from
 * which server received it, never from anything in the request. Paths follow GCE's
 * (`/computeMetadata/v1/...`), and so does the guest-attribute upload of SSH host keys.
 */
export class VmMetadataServer {
  private readonly server: http.Server;
  url = '';
  private onlyFrom: string | undefined;
  /** This VM's own allowances: one VM's calls never use up another's. */
  private readonly writes: TokenBucket;
  private readonly tokens: TokenBucket;

  constructor(
    readonly vm: LocalVm,
    private readonly backend: MetadataBackend,
    private readonly log: (message: string) => void,
    limits = METADATA_RATE_LIMITS,
  ) {
    this.writes = new TokenBucket(limits.writes.rate, limits.writes.burst);
    this.tokens = new TokenBucket(limits.tokens.rate, limits.tokens.burst);
    this.server = http.createServer((request, response) => {
      this.handle(request)
        .then(({ status, body, json }) => reply(response, status, body, json))
        .catch((error: unknown) => {
          if (error instanceof MetadataError) return reply(response, error.status, `${error.message}\n`, false, error.retryAfterSeconds);
          this.log(`metadata ${vm.vmId}: ${(error as Error).message}`);
          reply(response, 500, 'internal error\n');
        });
    });
  }

  /**
   * Listens on 127.0.0.1 (any free port), or on a listening socket made for this VM elsewhere
   * (see BridgesOnInterface); returns the port.
   */
  async listen(on?: net.Server): Promise<number> {
    if (on) {
      await new Promise<void>((resolve) => this.server.listen(on, resolve));
      // Only the VM's interface is redirected here, and its packets carry its own address.
      this.onlyFrom = this.vm.ip;
    } else this.url = await listenLocally(this.server);
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(request: http.IncomingMessage): Promise<{ status: number; body: string; json?: boolean }> {
    if (this.onlyFrom && request.socket.remoteAddress?.replace(/^::ffff:/, '') !== this.onlyFrom)
      throw new MetadataError(403, 'Only this VM is answered here.');
    if (request.headers['metadata-flavor'] !== METADATA_FLAVOR) throw new MetadataError(403, `Missing Metadata-Flavor:${METADATA_FLAVOR} header.`);
    // A browser-style or proxied request is never a VM's own metadata call.
    if (request.headers['x-forwarded-for']) throw new MetadataError(403, 'Forwarded requests are refused.');
    const url = new URL(request.url ?? '/', 'http://metadata');
    const path = url.pathname;

    const shuffle = /^\/stratoplane\/v1\/shuffle\/([a-z0-9-]+)\/(records|close)$/.exec(path);
    if (shuffle) return this.shuffle(request, url, shuffle[1]!, shuffle[2] as 'records' | 'close');

    if (request.method !== 'GET' && path.startsWith('/computeMetadata/')) this.allow(this.writes, 'metadata writes');
    const pair = /^\/computeMetadata\/v1\/instance\/network-pairs\/(vm-[a-z0-9-]{1,60})$/.exec(path);
    if (pair) return this.pair(request.method, pair[1]!);
    const hostKey = /^\/computeMetadata\/v1\/instance\/guest-attributes\/hostkeys\/([a-z0-9-]+)$/.exec(path);
    if (hostKey && request.method === 'PUT') {
      const body = await readSmallBody(request);
      if (body === undefined) throw new MetadataError(413, 'Request body too large.');
      const keyData = body.trim();
      await this.backend.publishHostKey(this.vm, hostKey[1]!, keyData);
      return { status: 200, body: '' };
    }
    if (request.method !== 'GET') throw new MetadataError(405, 'Method not allowed.');
    const attribute = /^\/computeMetadata\/v1\/instance\/attributes\/([A-Za-z0-9_-]+)$/.exec(path);
    if (attribute) {
      const value = this.backend.attributesOf(this.vm)?.[attribute[1]!];
      if (value === undefined) throw new MetadataError(404, `No attribute ${attribute[1]} is set on this VM.`);
      return { status: 200, body: value };
    }
    switch (path) {
      case '/computeMetadata/v1/instance/attributes/':
        return {
          status: 200,
          body: Object.keys(this.backend.attributesOf(this.vm) ?? {})
            .sort()
            .map((key) => `${key}\n`)
            .join(''),
        };
      case '/computeMetadata/v1/instance/id':
        return { status: 200, body: this.vm.vmId };
      case '/computeMetadata/v1/instance/network-interfaces/0/ip':
        return { status: 200, body: this.vm.ip };
      case '/computeMetadata/v1/instance/network-interfaces/0/network':
        return { status: 200, body: this.vm.networkId };
      case '/computeMetadata/v1/instance/service-accounts/':
        return { status: 200, body: this.backend.serviceAccountOf(this.vm) ? 'default/\n' : '' };
      case '/computeMetadata/v1/instance/service-accounts/default/email':
        return { status: 200, body: this.attachedServiceAccount() };
      case '/computeMetadata/v1/instance/service-accounts/default/identity': {
        this.allow(this.tokens, 'token requests');
        const audience = url.searchParams.get('audience');
        if (!audience || audience.length > 512) throw new MetadataError(400, 'audience parameter required (at most 512 characters).');
        this.attachedServiceAccount();
        const token = this.backend.mintToken(this.vm, audience);
        if (!token) throw new MetadataError(503, 'No current credential for this VM yet; retry shortly.');
        return { status: 200, body: token };
      }
    }
    throw new MetadataError(404, 'Not found.');
  }

  /**
   * `POST …/network-pairs/<vmId>` opens a network pair from this VM to that VM of another network
   * (the agent asks the control plane, the destination's host admits it, traffic is routed), and
   * keeps it open while this VM runs here; `DELETE` closes it. The VM never sees the token.
   */
  private async pair(method: string | undefined, destinationVmId: string) {
    try {
      if (method === 'POST') return { status: 200, body: JSON.stringify(await this.backend.pairs.open(this.vm, destinationVmId)), json: true };
      if (method === 'DELETE') {
        await this.backend.pairs.close(this.vm, destinationVmId);
        return { status: 204, body: '' };
      }
    } catch (error) {
      if (error instanceof PairRefusal) throw new MetadataError(error.status, error.message);
      throw error;
    }
    throw new MetadataError(405, 'POST opens the pair, DELETE closes it.');
  }

  /**
   * The VM as a shuffle worker: `POST …/records` (NDJSON `{key, value}` lines, header
   * `x-batch-id`: a batch sent again under its id is taken once), `POST …/close` once it has sent
   * everything, and `GET …/records?offset=N&limit=M` to read its partitions.
   */
  private async shuffle(request: http.IncomingMessage, url: URL, jobId: string, action: 'records' | 'close') {
    const answer = (body: unknown) => ({ status: 200, body: JSON.stringify(body), json: true });
    try {
      if (action === 'close') {
        if (request.method !== 'POST') throw new MetadataError(405, 'POST to close.');
        return answer(await this.backend.shuffle.close(this.vm.vmId, jobId));
      }
      if (request.method === 'GET') {
        const offset = Number(url.searchParams.get('offset') ?? 0);
        const limit = Number(url.searchParams.get('limit') ?? 1000);
        if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(limit) || limit < 1 || limit > 10_000)
          throw new MetadataError(400, 'offset is a whole number >= 0, limit 1 to 10000.');
        return answer(await this.backend.shuffle.read(this.vm.vmId, jobId, offset, limit));
      }
      if (request.method !== 'POST') throw new MetadataError(405, 'POST records, or GET them.');
      const batchId = request.headers['x-batch-id'];
      if (typeof batchId !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(batchId))
        throw new MetadataError(400, 'x-batch-id header required: 1-64 letters, digits, ., _ or -, the same when a batch is sent again.');
      const text = await readSmallBody(request, MAX_SHUFFLE_BATCH_BYTES);
      if (text === undefined) throw new MetadataError(413, `A batch is at most ${MAX_SHUFFLE_BATCH_BYTES} bytes.`);
      const records = text
        .split('\n')
        .map((line, index) => ({ line, number: index + 1 }))
        .filter(({ line }) => line.trim() !== '')
        .map(({ line, number }) => {
          let parsed: ReturnType<typeof ShuffleRecord.safeParse>;
          try {
            parsed = ShuffleRecord.safeParse(JSON.parse(line));
          } catch {
            throw new MetadataError(400, `line ${number}: not JSON.`);
          }
          if (!parsed.success)
            throw new MetadataError(400, `line ${number}: ${parsed.error.issues[0]?.path.join('.') || 'record'}: ${parsed.error.issues[0]?.message}.`);
          return parsed.data;
        });
      if (records.length === 0) throw new MetadataError(400, 'A batch needs at least one record.');
      return answer(await this.backend.shuffle.send(this.vm.vmId, jobId, batchId, records));
    } catch (error) {
      if (error instanceof ShuffleError) throw new MetadataError(error.status, error.message);
      throw error;
    }
  }

  /** Takes one from the VM's allowance, or refuses with 429 and when to ask again. */
  private allow(bucket: TokenBucket, what: string): void {
    const taken = bucket.take();
    if (taken.ok) return;
    const seconds = Math.max(1, Math.ceil(taken.retryAfterMs / 1000));
    throw new MetadataError(
      429,
      `Too many ${what} from this VM (${bucket.burst} at once, then ${+bucket.rate.toFixed(3)} a second); retry after ${seconds} s.`,
      seconds,
    );
  }

  private attachedServiceAccount(): string {
    const serviceAccount = this.backend.serviceAccountOf(this.vm);
    if (!serviceAccount) throw new MetadataError(404, 'No service account is attached to this VM.');
    return serviceAccount;
  }
}

function reply(response: http.ServerResponse, status: number, body: string, json = false, retryAfterSeconds?: number) {
  response.writeHead(status, {
    'content-type': json ? 'application/json' : 'text/plain; charset=utf-8',
    'metadata-flavor': METADATA_FLAVOR,
    'cache-control': 'no-store',
    ...(retryAfterSeconds ? { 'retry-after': String(retryAfterSeconds) } : {}),
  });
  response.end(body);
}
