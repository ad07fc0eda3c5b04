import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from '#events/openapi.ts';
import { operationFor, operations, type Operation } from '#events/operations.ts';

const document = openApiDocument();
const all = Object.values<Operation>(operations);

describe('OpenAPI description', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(structuredClone(document) as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('describes every operation once, with its path parameters, request body and answers', () => {
    const described = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation: operation as any })));
    expect(described.map(({ operation }) => operation.operationId).sort()).toEqual(all.map((operation) => operation.operationId).sort());
    for (const { path, method, operation } of described) {
      const source = operations[operation.operationId as keyof typeof operations] as Operation;
      expect(`${method.toUpperCase()} ${path}`).toBe(`${source.method} ${source.path}`);
      const pathParameters = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
      expect(operation.parameters.filter((parameter: any) => parameter.in === 'path').map((parameter: any) => parameter.name)).toEqual(pathParameters);
      expect(operation.requestBody !== undefined).toBe(source.body !== undefined);
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
    expect(listVms).toContainEqual({ name: 'limit', in: 'query', required: false, schema: expect.objectContaining({ type: 'integer', minimum: 1, maximum: 100, default: 50 }) });
    expect(listVms).toContainEqual({ name: 'networkId', in: 'query', required: false, schema: expect.objectContaining({ type: 'string', pattern: expect.any(String) }) });
  });

  it('says that tenants do not pick hosts: hostId and targetHostId are for the operator scope', () => {
    const createVm = (document.paths['/vms'] as any).post;
    expect(createVm.description).toBe('Scopes: tenant:write or operator.');
    expect(createVm.requestBody.content['application/json'].schema.properties.hostId.description).toMatch(/^Operators only \(scope operator\).*Tenants do not pick hosts: a tenant token that sends one is refused \(403\)/);
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
    expect(vm.properties.state).toEqual({ type: 'string', enum: ['pending', 'running', 'failed'] });
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
