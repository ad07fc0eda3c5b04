import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import { ApiError, ApiUnreachableError, createApiClient, pathOf, type ApiResponse } from '#events/api-client.ts';
import * as responses from '#events/responses.ts';

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** What the server answers next, and every request it got. */
let answer: { status: number; body?: unknown; raw?: string; headers?: Record<string, string> };
let received: Received[];
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ method: request.method!, url: request.url!, headers: request.headers, body: Buffer.concat(chunks).toString() });
      const text = answer.raw ?? (answer.body === undefined ? '' : JSON.stringify(answer.body));
      response.writeHead(answer.status, { ...(text ? { 'content-type': 'application/json' } : {}), ...answer.headers });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
beforeEach(() => {
  received = [];
  answer = { status: 200 };
});

const vm = {
  vmId: 'vm-1',
  tenantId: 'tenant-1',
  projectId: 'project-1',
  name: 'web',
  networkId: 'net-1',
  hostId: 'host-1',
  ip: '10.0.0.4',
  state: 'running',
  powerState: 'running',
  machineType: 's1.nano',
  region: 'eu-west-1',
  diskIds: [],
  onHostFailure: 'wait',
  endpoint: { address: '192.0.2.1', version: 1 },
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

describe('createApiClient', () => {
  it('sends the method, the path under the stage, a bearer token and a JSON body', async () => {
    // Prepare
    answer = { status: 201, body: vm };
    const api = createApiClient({ baseUrl, token: 'secret' });

    // Act
    const created = await api.createVm({ body: { name: 'web', networkId: 'net-1' } });

    // Assess
    expect(created).toEqual(vm);
    expect(received).toHaveLength(1);
    const [request] = received;
    expect(request!.method).toBe('POST');
    expect(request!.url).toBe('/v1/vms');
    expect(request!.headers.authorization).toBe('Bearer secret');
    expect(request!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(request!.body)).toEqual({ name: 'web', networkId: 'net-1' });
  });

  it('URL-encodes path parameters and writes the query', async () => {
    answer = { status: 200, body: { vms: [] } };
    const api = createApiClient({ baseUrl, token: 't' });

    await api.call('listVms', { query: { limit: 5, networkId: 'net 1/2', nextToken: undefined } });
    await api.getVm({ params: { vmId: 'a/b?c d' } }).catch(() => undefined);
    await api.allowSource({ params: { networkId: '../x', sourceNetworkId: 'é' } }).catch(() => undefined);

    expect(received.map(({ method, url }) => `${method} ${url}`)).toEqual([
      'GET /v1/vms?limit=5&networkId=net+1%2F2',
      'GET /v1/vms/a%2Fb%3Fc%20d',
      'PUT /v1/networks/..%2Fx/allowed-sources/%C3%A9',
    ]);
    expect(received[0]!.headers['content-type']).toBeUndefined();
    expect(received[0]!.body).toBe('');
  });

  it('refuses to call with a path parameter missing', async () => {
    const api = createApiClient({ baseUrl, token: 't' });
    await expect(api.call('getVm', { params: { vmId: '' } })).rejects.toThrow(/path parameter vmId is missing/);
    expect(received).toHaveLength(0);
    expect(pathOf('getHostKeys', { params: { vmId: 'vm 1' } })).toBe('/vms/vm%201/host-keys');
  });

  it('reads the token on every call', async () => {
    answer = { status: 204 };
    let rotation = 0;
    const api = createApiClient({ baseUrl, token: async () => `token-${++rotation}` });

    expect(await api.deleteVm({ params: { vmId: 'vm-1' } })).toBeUndefined();
    await api.deleteVm({ params: { vmId: 'vm-1' } });

    expect(received.map((request) => request.headers.authorization)).toEqual(['Bearer token-1', 'Bearer token-2']);
  });

  it('turns an error answer into an ApiError with status, code, message and Retry-After', async () => {
    answer = { status: 503, body: { message: 'the resource is contended; retry shortly' }, headers: { 'retry-after': '3' } };
    const api = createApiClient({ baseUrl, token: 't' });

    const error = await api.getNetwork({ params: { networkId: 'net-1' } }).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({
      operationId: 'getNetwork',
      method: 'GET',
      path: '/networks/net-1',
      status: 503,
      code: 'ServiceUnavailable',
      detail: 'the resource is contended; retry shortly',
      retryAfterSeconds: 3,
      message: 'GET /networks/net-1: 503 ServiceUnavailable: the resource is contended; retry shortly',
    });
  });

  it.each([
    [400, 'BadRequest'],
    [401, 'Unauthorized'],
    [403, 'Forbidden'],
    [404, 'NotFound'],
    [409, 'Conflict'],
    [415, 'UnsupportedMediaType'],
    [500, 'InternalError'],
    [429, 'Unexpected'],
  ] as const)('names status %i %s', async (status, code) => {
    answer = { status, body: { message: 'no' } };
    const api = createApiClient({ baseUrl, token: 't' });

    const error = (await api.createNetwork({ body: { name: 'n', cidr: '10.0.0.0/24' } }).catch((caught: unknown) => caught)) as ApiError;

    expect(error).toBeInstanceOf(ApiError);
    expect([error.status, error.code, error.detail, error.retryAfterSeconds]).toEqual([status, code, 'no', undefined]);
  });

  it('keeps an error body that is not JSON as the message', async () => {
    answer = { status: 502, raw: 'Bad Gateway' };
    const api = createApiClient({ baseUrl, token: 't' });

    const error = (await api.listHosts().catch((caught: unknown) => caught)) as ApiError;

    expect([error.status, error.code, error.detail]).toEqual([502, 'Unexpected', 'Bad Gateway']);
  });

  it('hands back the whole answer with send, errors included', async () => {
    const api = createApiClient({ baseUrl, token: 't' });
    answer = { status: 201, body: vm, headers: { 'x-extra': 'yes' } };
    const created = await api.send('createVm', { body: { name: 'web', networkId: 'net-1' } });
    answer = { status: 404, body: { message: 'no such vm' } };
    const missing = await api.send('getVm', { params: { vmId: 'vm-2' } });

    expect(created).toMatchObject({ ok: true, status: 201, body: vm });
    expect(created.headers.get('x-extra')).toBe('yes');
    expect(missing).toMatchObject({ ok: false, status: 404, body: { message: 'no such vm' } });
    expect(!missing.ok && missing.error.code).toBe('NotFound');
  });

  it('validates answers with the operation schema when asked', async () => {
    const strict = createApiClient({ baseUrl, token: 't', validate: true });
    const some = createApiClient({ baseUrl, token: 't', validate: ['listHosts'] });
    const loose = createApiClient({ baseUrl, token: 't' });
    answer = { status: 200, body: { ...vm, tableKey: 'VM#vm-1' } };

    const refused = (await strict.getVm({ params: { vmId: 'vm-1' } }).catch((caught: unknown) => caught)) as ApiError;
    expect(refused).toBeInstanceOf(ApiError);
    expect([refused.status, refused.code]).toEqual([200, 'Unexpected']);
    expect(refused.detail).toMatch(/not what getVm describes/);
    expect(await loose.getVm({ params: { vmId: 'vm-1' } })).toMatchObject({ tableKey: 'VM#vm-1' });
    expect(await some.getVm({ params: { vmId: 'vm-1' } })).toMatchObject({ tableKey: 'VM#vm-1' });

    answer = { status: 200, body: vm };
    expect(responses.Vm.parse(await strict.getVm({ params: { vmId: 'vm-1' } }))).toEqual(vm);
  });

  it('refuses a success status the operation does not answer with', async () => {
    answer = { status: 200, body: vm };
    const api = createApiClient({ baseUrl, token: 't' });

    const error = (await api.createVm({ body: { name: 'web', networkId: 'net-1' } }).catch((caught: unknown) => caught)) as ApiError;

    expect([error.status, error.code]).toEqual([200, 'Unexpected']);
  });

  it('says when the API cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const api = createApiClient({ baseUrl: `http://127.0.0.1:${port}/v1`, token: 't' });

    const error = await api.listHosts().catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ApiUnreachableError);
    expect((error as ApiUnreachableError).message).toMatch(/^GET \/hosts: cannot reach http:\/\/127\.0\.0\.1:\d+\/v1: /);
  });

  it('types requests and answers from the operations', () => {
    const api = createApiClient({ baseUrl, token: 't' });
    expectTypeOf<ApiResponse<'createVm'>>().toEqualTypeOf<(typeof responses.Vm)['_zod']['output']>();
    expectTypeOf<ApiResponse<'deleteVm'>>().toEqualTypeOf<undefined>();
    expectTypeOf<ApiResponse<'registerHost'>>().toHaveProperty('queueUrl').toEqualTypeOf<string>();
    expectTypeOf(api.getVm).parameter(0).toHaveProperty('params').toEqualTypeOf<{ vmId: string }>();
    // Mistakes the compiler catches: a missing path parameter, a body field the schema does not have.
    const typeOnly = () => {
      // @ts-expect-error getVm needs its vmId
      void api.getVm();
      // @ts-expect-error createVm takes no field nme
      void api.createVm({ body: { nme: 'web', networkId: 'net-1' } });
    };
    expect(typeOnly).toBeTypeOf('function');
  });
});
