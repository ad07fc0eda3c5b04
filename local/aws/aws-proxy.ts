import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { capacityUnitsOf, describeJsonRequest, indexedPutsOf, isEmptyPoll, s3ActionOf, serviceOf, type AwsCall } from './aws-calls.ts';

/** Calls of one kind added up: `service action resource`. */
export interface AwsCallTotal {
  service: string;
  action: string;
  resource?: string;
  calls: number;
  items: number;
  consistentReads: number;
  requestBytes: number;
  responseBytes: number;
  /** DynamoDB request units, as billed on demand (an estimate: see capacityUnitsOf). */
  readUnits: number;
  writeUnits: number;
}

/**
 * Stands between every local caller (runners, functions, agents, tests) and the emulator. It
 * counts each AWS call by service, action and resource, which is how the cost model is measured
 * rather than guessed, and it can make AWS unreachable for a while: open connections are reset,
 * so requests in flight lose their answers (possibly after the emulator acted on them, as a lost
 * response on AWS), and new connections are refused until it is over. The emulator itself, which
 * stands for AWS, keeps everything it acknowledged, as AWS does.
 */
export class AwsProxy {
  private readonly sockets = new Set<Socket>();
  private readonly totals = new Map<string, AwsCallTotal>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
  private downUntil = 0;

  private constructor(
    private readonly server: http.Server,
    private readonly target: URL,
    readonly url: string,
  ) {}

  /** Listens on 127.0.0.1:`port` (0: any) and forwards to `target`. */
  static async start(target: string, port = 0): Promise<AwsProxy> {
    const server = http.createServer({ keepAliveTimeout: 60_000 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    const proxy = new AwsProxy(server, new URL(target), `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('connection', (socket) => proxy.accept(socket));
    server.on('request', (request, response) => proxy.forward(request, response));
    return proxy;
  }

  /** Makes AWS unreachable for `ms`: resets every open connection now, and every new one until then. */
  outage(ms: number): void {
    this.downUntil = Date.now() + ms;
    for (const socket of this.sockets) socket.resetAndDestroy();
  }

  get down(): boolean {
    return Date.now() < this.downUntil;
  }

  /** Every kind of call so far, added up. Take two and subtract to count what happened in between. */
  snapshot(): AwsCallTotal[] {
    return [...this.totals.values()].map((total) => ({ ...total }));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.agent.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket) {
    if (this.down) return void socket.resetAndDestroy();
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private forward(request: http.IncomingMessage, response: http.ServerResponse) {
    if (this.down) return void request.socket.resetAndDestroy();
    const url = new URL(request.url ?? '/', 'http://aws');
    const { service, action } = serviceOf(request.headers, url);
    const call: AwsCall = { service, action: action ?? '', items: 1, requestBytes: 0, responseBytes: 0 };
    // Small JSON bodies say what a call is about; S3 content streams through untouched.
    const body: Buffer[] | undefined = service === 's3' ? undefined : [];
    // The emulator must not wait for a 100-continue this proxy already answered.
    const { expect: _expect, ...headers } = request.headers;
    const upstream = http.request({
      host: this.target.hostname,
      port: this.target.port,
      method: request.method,
      path: request.url,
      headers,
      agent: this.agent,
    });
    request.on('data', (chunk: Buffer) => {
      call.requestBytes += chunk.length;
      body?.push(chunk);
    });
    request.pipe(upstream);
    upstream.on('response', (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      const answerBody: Buffer[] | undefined = body ? [] : undefined;
      answer.on('data', (chunk: Buffer) => {
        call.responseBytes += chunk.length;
        answerBody?.push(chunk);
      });
      answer.pipe(response);
      answer.on('end', () => this.record(call, request, url, body, answerBody));
    });
    upstream.on('error', () => request.socket.destroy());
    response.on('close', () => {
      if (!response.writableFinished) upstream.destroy();
    });
  }

  private record(call: AwsCall, request: http.IncomingMessage, url: URL, body: Buffer[] | undefined, answerBody: Buffer[] | undefined) {
    let indexedPuts = 0;
    if (call.service === 's3') call.action = s3ActionOf(request.method ?? 'GET', url, request.headers);
    else if (body) {
      const text = Buffer.concat(body).toString('utf8');
      if (!call.action) call.action = new URLSearchParams(text).get('Action') ?? url.searchParams.get('Action') ?? `${request.method} ${url.pathname}`;
      try {
        const json = text.startsWith('{') ? JSON.parse(text) : {};
        Object.assign(call, describeJsonRequest(call.service, call.action, json));
        if (call.service === 'dynamodb') indexedPuts = indexedPutsOf(json);
      } catch {
        // Not JSON after all: counted as one call about nothing in particular.
      }
    }
    // Polls that found nothing are the price of waiting, not of any one operation: counted apart.
    if (answerBody && isEmptyPoll(call, Buffer.concat(answerBody).toString('utf8'))) call.action += ' (empty)';
    const units = capacityUnitsOf({ ...call, indexedPuts });
    const key = `${call.service} ${call.action} ${call.resource ?? ''}`;
    let total = this.totals.get(key);
    if (!total) {
      total = {
        service: call.service,
        action: call.action,
        resource: call.resource,
        calls: 0,
        items: 0,
        consistentReads: 0,
        requestBytes: 0,
        responseBytes: 0,
        readUnits: 0,
        writeUnits: 0,
      };
      this.totals.set(key, total);
    }
    total.readUnits += units.read;
    total.writeUnits += units.write;
    total.calls++;
    total.items += call.items;
    if (call.consistentRead) total.consistentReads++;
    total.requestBytes += call.requestBytes;
    total.responseBytes += call.responseBytes;
  }
}
