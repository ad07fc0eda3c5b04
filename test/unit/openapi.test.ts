import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '#events/openapi.ts';
import { CreateNetworkRequest, RegisterHostRequest, RevokeTokenRequest } from '#events/api.ts';
import { ModifyDiskRequest } from '#events/disks.ts';
import { operationFor, operations, type Operation } from '#events/operations.ts';
import { VmAttributes } from '#events/vm-config.ts';

const document = openApiDocument();
const all = Object.values<Operation>(operations);

describe('OpenAPI description', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(structuredClone(document) as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('describes every operation once, with its path parameters, request body and answers', () => {
    const described = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ path, method, operation: operation as any })),
    );
    expect(described.map(({ operation }) => operation.operationId).sort()).toEqual(all.map((operation) => operation.operationId).sort());
    for (const { path, method, operation } of described) {
      const source = operations[operation.operationId as keyof typeof operations] as Operation;
      expect(`${method.toUpperCase()} ${path}`).toBe(`${source.method} ${source.path}`);
      const pathParameters = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
      expect(operation.parameters.filter((parameter: any) => parameter.in === 'path').map((parameter: any) => parameter.name)).toEqual(pathParameters);
      expect(operation.requestBody !== undefined).toBe(source.body !== undefined);
      // A body the operation works without is described as optional (a drain without a target).
      if (source.body) expect(operation.requestBody.required).toBe(source.bodyOptional !== true);
      for (const [status, { body }] of Object.entries(source.responses)) {
        // Every answer but 204 has a body, and the description says what is in it.
        expect(body === undefined).toBe(status === '204');
        if (body) expect(operation.responses[status].content['application/json'].schema).toMatchObject({ type: 'object' });
        else expect(operation.responses[status].content).toBeUndefined();
      }
      expect(operation.responses['400']).toEqual({ $ref: '#/components/responses/BadRequest' });
    }
  });

  it('carries the rules of the schemas that validate requests', () => {
    const createNetwork = (document.paths['/networks'] as any).post.requestBody.content['application/json'].schema;
    expect(createNetwork).toMatchObject({ type: 'object', required: ['name', 'cidr'], additionalProperties: false });
    expect(createNetwork.properties.name).toEqual({ type: 'string', minLength: 1, maxLength: 128 });
    const listVms = (document.paths['/vms'] as any).get.parameters;
    expect(listVms).toContainEqual({
      name: 'limit',
      in: 'query',
      required: false,
      schema: expect.objectContaining({ type: 'integer', minimum: 1, maximum: 100, default: 50 }),
    });
    expect(listVms).toContainEqual({
      name: 'networkId',
      in: 'query',
      required: false,
      schema: expect.objectContaining({ type: 'string', pattern: expect.any(String) }),
    });
  });

  it('states the rules the refinements enforce: in the schema where JSON Schema can, in the description where it cannot', () => {
    const body = (path: string, method: string) => (document.paths[path] as any)[method].requestBody.content['application/json'].schema;
    const cidr = new RegExp(body('/networks', 'post').properties.cidr.pattern);
    expect(['10.0.0.0/16', '10.0.0.0/24', '10.0.0.16/28'].filter((value) => cidr.test(value))).toHaveLength(3);
    expect(['10.0.0.0/15', '10.0.0.0/29', '10.0.0.0/0', '10.0.0.0/32', '10.0.0.0/8', '256.0.0.0/24'].filter((value) => cidr.test(value))).toEqual([]);
    expect(body('/shuffle-jobs', 'post').properties.workerVmIds).toMatchObject({ uniqueItems: true, minItems: 1, maxItems: 64 });
    const attributes = body('/vms/{vmId}/attributes', 'put').properties.attributes;
    expect(attributes).toMatchObject({
      propertyNames: { pattern: '^[A-Za-z0-9_-]{1,64}$' },
      maxProperties: 64,
      additionalProperties: { type: 'string', maxLength: 4096 },
    });
    expect(attributes.description).toMatch(/32 KiB/);
    const origin = body('/vms/{vmId}/egress-policy', 'put').properties.allow.items;
    const originPattern = new RegExp(origin.pattern);
    expect(['https://api.example.com', 'http://svc.example.net:8080'].every((value) => originPattern.test(value))).toBe(true);
    expect(
      [
        'https://api.example.com/',
        'https://10.0.0.1',
        'ftp://example.com',
        'https://user@example.com',
        'https://API.example.com',
        'https://example.com/path',
      ].filter((value) => originPattern.test(value)),
    ).toEqual([]);
    expect(origin.description).toMatch(/IP literals, localhost and \*\.localhost are refused/);
    expect(body('/disks/{diskId}', 'patch')).toMatchObject({ minProperties: 1, additionalProperties: false });
    expect(body('/disks/{diskId}', 'patch').description).toMatch(/size-grows-only.*iops-per-gib.*throughput-per-iops/s);
    expect(body('/disks', 'post').description).toMatch(/iops-per-gib.*throughput-per-iops/s);
    expect(body('/token-revocations', 'post').oneOf).toEqual([{ required: ['token'] }, { required: ['jti'] }]);
    // The response schemas keep the plain forms: a stored CIDR of any prefix is still described.
    const network = (document.paths['/networks/{networkId}'] as any).get.responses['200'].content['application/json'].schema;
    expect(network.properties.cidr.pattern).toMatch(/\(\[0-9\]\|\[1-2\]\[0-9\]\|3\[0-2\]\)\$$/);
  });

  it('says with its patterns exactly what the schemas accept: the CIDR prefix, unicast host addresses, attribute keys, revocation by token or jti', () => {
    const body = (path: string, method: string) => (document.paths[path] as any)[method].requestBody.content['application/json'].schema;
    const cidr = new RegExp(body('/networks', 'post').properties.cidr.pattern);
    for (const address of ['10.0.0.0', '192.168.1.0', '0.0.0.0', '255.255.255.255', '01.0.0.0', '10.0.0']) {
      for (let prefix = 0; prefix <= 33; prefix += 1) {
        const value = `${address}/${prefix}`;
        expect(cidr.test(value), value).toBe(CreateNetworkRequest.shape.cidr.safeParse(value).success);
      }
    }
    const underlay = new RegExp(body('/hosts', 'post').properties.address.pattern);
    for (let first = 0; first <= 256; first += 1) {
      for (const value of [`${first}.0.0.0`, `${first}.1.2.3`, `${first}.255.255.255`]) {
        expect(underlay.test(value), value).toBe(RegisterHostRequest.shape.address.safeParse(value).success);
      }
    }
    for (const value of ['01.0.0.1', '10.0.0', '10.0.0.256', '10.0.0.1/32']) expect(underlay.test(value), value).toBe(false);
    const key = new RegExp(body('/vms/{vmId}/attributes', 'put').properties.attributes.propertyNames.pattern);
    for (const name of ['a', 'A-b_9', 'x'.repeat(64), 'x'.repeat(65), '', 'a.b', 'a b', 'ä']) {
      expect(key.test(name), name).toBe(VmAttributes.safeParse({ [name]: 'v' }).success);
    }
    expect(VmAttributes.safeParse(Object.fromEntries(Array.from({ length: 65 }, (_, index) => [`k${index}`, 'v']))).success).toBe(false);
    for (const request of [{ token: 't'.repeat(20) }, { jti: 'abcdefgh' }, { token: 't'.repeat(20), jti: 'abcdefgh' }, { reason: 'r' }, {}]) {
      const oneOf = ['token', 'jti'].filter((field) => field in request).length === 1;
      expect(RevokeTokenRequest.safeParse(request).success, JSON.stringify(request)).toBe(oneOf);
    }
    expect(ModifyDiskRequest.safeParse({}).success).toBe(false);
  });

  it('has one top-level tag per area, and tags every operation with one of them', () => {
    const names = document.tags.map((tag) => tag.name);
    expect(new Set(names).size).toBe(names.length);
    for (const tag of document.tags) expect(tag.description.length).toBeGreaterThan(0);
    const used = new Set<string>();
    for (const methods of Object.values(document.paths)) {
      for (const operation of Object.values(methods) as any[]) {
        expect(operation.tags).toHaveLength(1);
        expect(names).toContain(operation.tags[0]);
        used.add(operation.tags[0]);
      }
    }
    expect([...used].sort()).toEqual([...names].sort());
    expect((document.paths['/disks/{diskId}'] as any).patch.tags).toEqual(['disks']);
    expect((document.paths['/token-revocations'] as any).post.tags).toEqual(['tokens']);
  });

  it('says that tenants do not pick hosts: hostId and targetHostId are for the operator scope', () => {
    const createVm = (document.paths['/vms'] as any).post;
    expect(createVm.description).toBe('Scopes: tenant:write or operator.');
    expect(createVm.requestBody.content['application/json'].schema.properties.hostId.description).toMatch(
      /^Operators only \(scope operator\).*Tenants do not pick hosts: a tenant token that sends one is refused \(403\)/,
    );
    expect(createVm.requestBody.content['application/json'].schema.properties.tenantId.description).toMatch(/^Operators only/);
    const migrate = (document.paths['/vms/{vmId}/migrate'] as any).post;
    expect(migrate.summary).toMatch(/placement picks/);
    expect(migrate.requestBody.content['application/json'].schema.required ?? []).not.toContain('targetHostId');
    expect(migrate.requestBody.content['application/json'].schema.properties.targetHostId.description).toMatch(/^Operators only \(scope operator\)/);
    const hostFilter = (document.paths['/vms'] as any).get.parameters.find((parameter: any) => parameter.name === 'hostId');
    expect(hostFilter.schema.description).toMatch(/^Operators only/);
  });

  it('describes answers strictly, as the schemas that check them in the tests', () => {
    const vm = (document.paths['/vms/{vmId}'] as any).get.responses['200'].content['application/json'].schema;
    expect(vm).toMatchObject({ type: 'object', additionalProperties: false });
    expect(vm.required).toEqual(expect.arrayContaining(['vmId', 'ip', 'hostId', 'state', 'endpoint']));
    expect(vm.properties.state).toEqual({
      type: 'string',
      enum: ['provisioning', 'starting', 'running', 'migrating', 'stopping', 'stopped', 'failed', 'unreachable'],
    });
    expect(document.components.schemas.Error).toMatchObject({ type: 'object', required: ['message'] });
  });

  it('finds the operation of a concrete request', () => {
    expect(operationFor('GET', '/vms/vm-1')?.operationId).toBe('getVm');
    expect(operationFor('GET', '/vms?networkId=net-1')?.operationId).toBe('listVms');
    expect(operationFor('PUT', '/hosts/h-1/vms/vm-1/host-keys')?.operationId).toBe('publishHostKeys');
    expect(operationFor('GET', '/vms/vm-1/host-keys')?.operationId).toBe('getHostKeys');
    expect(operationFor('GET', '/nowhere')).toBeUndefined();
    expect(operationFor('PATCH', '/vms/vm-1')).toBeUndefined();
  });
});
