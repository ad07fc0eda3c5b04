import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { capacityUnitsOf, describeJsonRequest, indexedPutsOf, isEmptyPoll, s3ActionOf, serviceOf, type AwsCall } from './aws-calls.ts';
import {
  EXPECT_REFUSAL_HEADER,
  IAM_CONTROL_PATH,
  IamCheck,
  type IamMode,
  type IamReport,
  type PrincipalSpec,
  type Refusal,
  type Registration,
  type Verdict,
} from './iam-check.ts';
import { EmulatorLookups } from './iam-lookups.ts';
import { credentialOf, permissionsFor, s3OperationOf, type WireCall } from './iam-requests.ts';

const LOCAL_ACCOUNT = '000000000000';

/** Calls of one kind added up: `service action resource`. */
export interface AwsCallTotal {
  /** Who made the calls: a function by its logical id (`ApiPostVms`, `FanOut`), `host agents`, or `unregistered` (tests, runners). */
  caller: string;
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
  /** Time from the request's arrival to its answer's end, summed over the calls (long polls included: they wait). */
  durationMs: number;
}

/**
 * Stands between every local caller (runners, functions, agents, tests) and the emulator. It
 * counts each AWS call by service, action and resource, which is how the cost model is measured
 * rather than guessed, and it can make AWS unreachable for a while: open connections are reset,
 * so requests in flight lose their answers (possibly after the emulator acted on them, as a lost
 * response on AWS), and new connections are refused until it is over. The emulator itself, which
 * stands for AWS, keeps everything it acknowledged, as AWS does.
 *
 * It also stands for IAM, which the emulator does not enforce: each caller signs with a key of its
 * own (every function its role's, every host agent its own), registered here with its policy
 * statements (`POST /_stratoplane/iam/register`), and each call is evaluated against them
 * (iam-check.ts). In `enforce` mode (STRATOPLANE_IAM, the default) a call the role would not
 * allow on AWS gets AWS's AccessDenied answer and never reaches the emulator; in `report` mode it
 * goes through. Either way it is in the report (`GET /_stratoplane/iam/report`), beside the
 * grants no call used. Keys nobody registered (tests, the runners' own provisioning) are counted
 * and let through.
 */
export class AwsProxy {
  private readonly sockets = new Set<Socket>();
  private readonly totals = new Map<string, AwsCallTotal>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
  private downUntil = 0;
  private readonly lookups: EmulatorLookups;
  private readonly iam: IamCheck;

  private constructor(
    private readonly server: http.Server,
    private readonly target: URL,
    readonly url: string,
    iamMode: IamMode,
  ) {
    this.lookups = new EmulatorLookups(target);
    this.iam = new IamCheck(iamMode, this.lookups);
  }

  /** Listens on 127.0.0.1:`port` (0: any) and forwards to `target`. */
  static async start(target: string, port = 0, iamMode: IamMode = iamModeFromEnv()): Promise<AwsProxy> {
    const server = http.createServer({ keepAliveTimeout: 60_000 });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    const proxy = new AwsProxy(server, new URL(target), `http://127.0.0.1:${(server.address() as AddressInfo).port}`, iamMode);
    server.on('connection', (socket) => proxy.accept(socket));
    server.on('request', (request, response) => {
      proxy.forward(request, response).catch((error: Error) => {
        console.error(`[aws-proxy] ${request.method} ${request.url}: ${error.stack ?? error.message}`);
        if (!response.headersSent) response.writeHead(500).end();
        else response.destroy();
      });
    });
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

  /** What the IAM check found so far: refused calls, unused grants, unattributed callers. */
  iamReport(): IamReport {
    return this.iam.report();
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

  private async forward(request: http.IncomingMessage, response: http.ServerResponse) {
    if (this.down) return void request.socket.resetAndDestroy();
    const url = new URL(request.url ?? '/', 'http://aws');
    if (url.pathname.startsWith(IAM_CONTROL_PATH)) return this.iamControl(request, response, url);
    const { service, action } = serviceOf(request.headers, url);
    const call: AwsCall = { service, action: action ?? '', items: 1, requestBytes: 0, responseBytes: 0 };
    const startedAt = performance.now();
    // JSON bodies are small and say what a call is about (read whole, before IAM decides); S3 content streams through untouched.
    const bodyText = service === 's3' ? undefined : await readBody(request);
    if (bodyText !== undefined) call.requestBytes = Buffer.byteLength(bodyText);
    const credential = credentialOf(request.headers, url);
    call.caller = callerOf(credential && this.iam.principalOf(credential.accessKeyId));
    const wire: WireCall = {
      service,
      operation: action ?? (service === 's3' ? s3OperationOf(request.method ?? 'GET', url, request.headers) : undefined),
      method: request.method ?? 'GET',
      url,
      headers: request.headers,
      region: credential?.region ?? 'us-east-1',
      accountId: LOCAL_ACCOUNT,
      body: parseJson(bodyText),
    };
    let verdict: Verdict = { refusals: [] };
    if (credential) verdict = await this.iam.authorize(credential.accessKeyId, wire, { expectRefusal: request.headers[EXPECT_REFUSAL_HEADER] !== undefined });
    if (verdict.refusals.length > 0 && this.iam.mode === 'enforce') {
      this.record(call, request, url, bodyText, undefined, startedAt, ' (refused)');
      return void accessDenied(response, service, verdict.principal!, verdict.refusals[0]!);
    }
    if (this.down) return void request.socket.resetAndDestroy();
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
    if (bodyText !== undefined) upstream.end(bodyText);
    else {
      request.on('data', (chunk: Buffer) => {
        call.requestBytes += chunk.length;
      });
      request.pipe(upstream);
    }
    upstream.on('response', (answer) => {
      const answerBody: Buffer[] | undefined = bodyText !== undefined ? [] : undefined;
      const finish = () => {
        const text = answerBody ? Buffer.concat(answerBody).toString('utf8') : undefined;
        this.record(call, request, url, bodyText, text, startedAt);
        if ((answer.statusCode ?? 500) < 300) this.observe(wire, text);
      };
      if (verdict.deferred && (answer.statusCode ?? 500) < 300) {
        // Decided on what the answer names (the key of a ciphertext): held until then.
        answer.on('data', (chunk: Buffer) => answerBody!.push(chunk));
        answer.on('end', async () => {
          const refusals = await verdict.deferred!(parseJson(Buffer.concat(answerBody!).toString('utf8')) ?? {});
          if (refusals.length > 0 && this.iam.mode === 'enforce') return void accessDenied(response, service, verdict.principal!, refusals[0]!);
          call.responseBytes = Buffer.concat(answerBody!).length;
          response.writeHead(answer.statusCode ?? 502, answer.headers).end(Buffer.concat(answerBody!));
          finish();
        });
        return;
      }
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.on('data', (chunk: Buffer) => {
        call.responseBytes += chunk.length;
        answerBody?.push(chunk);
      });
      answer.pipe(response);
      answer.on('end', finish);
    });
    upstream.on('error', () => request.socket.destroy());
    response.on('close', () => {
      if (!response.writableFinished) upstream.destroy();
    });
  }

  /** What an answer tells the IAM check: shard iterators' streams; queues whose tags changed. */
  private observe(call: WireCall, answerText: string | undefined) {
    this.iam.observe(call, parseJson(answerText));
    if (call.service === 'sqs' && ['TagQueue', 'UntagQueue', 'CreateQueue', 'DeleteQueue'].includes(call.operation ?? '')) {
      for (const permission of permissionsFor(call)) if (permission.resource.startsWith('arn:')) this.lookups.queueChanged(permission.resource);
    }
  }

  /** `POST /_stratoplane/iam/register` (a runner's or agent's principals), `GET /_stratoplane/iam/report`. */
  private async iamControl(request: http.IncomingMessage, response: http.ServerResponse, url: URL) {
    const what = url.pathname.slice(IAM_CONTROL_PATH.length);
    if (request.method === 'POST' && what === 'register') {
      this.iam.register(JSON.parse(await readBody(request)) as Registration);
      return void response.writeHead(204).end();
    }
    if (request.method === 'GET' && what === 'report')
      return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(this.iamReport()));
    response.writeHead(404).end();
  }

  private record(
    call: AwsCall,
    request: http.IncomingMessage,
    url: URL,
    text: string | undefined,
    answerText: string | undefined,
    startedAt: number,
    suffix = '',
  ) {
    let indexedPuts = 0;
    if (call.service === 's3') call.action = s3ActionOf(request.method ?? 'GET', url, request.headers);
    else if (text !== undefined) {
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
    if (answerText !== undefined && isEmptyPoll(call, answerText)) call.action += ' (empty)';
    call.action += suffix;
    const units = capacityUnitsOf({ ...call, indexedPuts });
    const key = `${call.caller} ${call.service} ${call.action} ${call.resource ?? ''}`;
    let total = this.totals.get(key);
    if (!total) {
      total = {
        caller: call.caller ?? 'unregistered',
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
        durationMs: 0,
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
    total.durationMs += performance.now() - startedAt;
  }
}

/** How the counts name a caller: a function by its logical id without CDK's hash, every host agent as one. */
function callerOf(principal: PrincipalSpec | undefined): string {
  if (!principal) return 'unregistered';
  if (principal.kind === 'host-agent') return 'host agents';
  if (principal.kind === 'function') return (principal.name.split(/[ /]/).at(-1) ?? principal.name).replace(/[0-9A-F]{8}$/, '');
  return principal.kind;
}

function iamModeFromEnv(): IamMode {
  const mode = process.env.STRATOPLANE_IAM ?? 'enforce';
  if (mode !== 'enforce' && mode !== 'report' && mode !== 'off') throw new Error(`STRATOPLANE_IAM must be enforce, report or off, not ${mode}`);
  return mode;
}

function readBody(request: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function parseJson(text: string | undefined): Record<string, unknown> | undefined {
  if (!text?.startsWith('{')) return undefined;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** AWS's AccessDenied answer, in the error shape of each protocol, naming the principal, action and resource as AWS does. */
function accessDenied(response: http.ServerResponse, service: string, principal: PrincipalSpec, refusal: Refusal) {
  const who = principal.arn ?? `arn:aws:sts::${LOCAL_ACCOUNT}:assumed-role/${principal.name.replace(/\W+/g, '-')}/local`;
  const why =
    refusal.decision === 'explicit-deny'
      ? `with an explicit deny in an identity-based policy`
      : `because no identity-based policy allows the ${refusal.action} action`;
  const message = `User: ${who} is not authorized to perform: ${refusal.action} on resource: ${refusal.resource} ${why}`;
  const requestId = randomUUID();
  if (service === 's3') {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>${escapeXml(message)}</Message><RequestId>${requestId}</RequestId></Error>`;
    return response.writeHead(403, { 'content-type': 'application/xml', 'x-amz-request-id': requestId }).end(xml);
  }
  const headers: http.OutgoingHttpHeaders = { 'x-amzn-requestid': requestId, 'x-amzn-errortype': 'AccessDeniedException' };
  if (service === 'kms') {
    return response
      .writeHead(400, { ...headers, 'content-type': 'application/x-amz-json-1.1' })
      .end(JSON.stringify({ __type: 'AccessDeniedException', message }));
  }
  if (service === 'sqs') {
    // SQS's JSON protocol names the query-protocol error too, which the SDK maps to its code.
    return response
      .writeHead(403, { ...headers, 'content-type': 'application/x-amz-json-1.0', 'x-amzn-query-error': 'AccessDenied;Sender' })
      .end(JSON.stringify({ __type: 'com.amazon.coral.service#AccessDeniedException', message }));
  }
  // DynamoDB and DynamoDB Streams answer 400.
  return response
    .writeHead(400, { ...headers, 'content-type': 'application/x-amz-json-1.0' })
    .end(JSON.stringify({ __type: 'com.amazon.coral.service#AccessDeniedException', Message: message }));
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (character) => `&#${character.charCodeAt(0)};`);
}
