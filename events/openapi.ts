import { z } from 'zod';
import { bodyErrorStatuses, errorStatuses, operations, type Operation } from './operations.ts';
import { ErrorBody } from './responses.ts';

type JsonSchema = Record<string, unknown>;

/** A schema as JSON Schema 2020-12 (what OpenAPI 3.1 uses): of what callers send (`input`), or of what the API sends (`output`). */
function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...jsonSchema } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return jsonSchema;
}

const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } });

type ErrorStatus = readonly [name: string, description: string, options?: { body: false }];
const errorResponses = Object.fromEntries(
  [...Object.values<ErrorStatus>(errorStatuses), ...Object.values<ErrorStatus>(bodyErrorStatuses)].map(([name, description, options]) => [
    name,
    options?.body === false ? { description } : errorResponse(description),
  ]),
);
const references = (statuses: Record<number, ErrorStatus>) =>
  Object.fromEntries(Object.entries(statuses).map(([status, [name]]) => [status, { $ref: `#/components/responses/${name}` }]));
const commonErrors = references(errorStatuses);
const bodyErrors = references(bodyErrorStatuses);

function parameters(operation: Operation) {
  const path = Object.entries((jsonSchemaOf(operation.params, 'input').properties ?? {}) as Record<string, JsonSchema>).map(([name, schema]) => ({
    name,
    in: 'path',
    required: true,
    schema,
  }));
  if (!operation.query) return path;
  const query = jsonSchemaOf(operation.query, 'input');
  const required = new Set((query.required ?? []) as string[]);
  return [
    ...path,
    ...Object.entries((query.properties ?? {}) as Record<string, JsonSchema>).map(([name, schema]) => ({
      name,
      in: 'query',
      required: required.has(name),
      schema,
    })),
  ];
}

/** One tag per area of the API, by the first segment of its paths; each operation carries its area's. */
export const tags = [
  { name: 'api', segment: 'openapi.json', description: 'This description of the API' },
  {
    name: 'hosts',
    segment: 'hosts',
    description: "Hosts and what their agents fetch and report: forwarding tables, VMs' keys, configurations, credentials, shuffle progress",
  },
  { name: 'networks', segment: 'networks', description: 'Virtual networks and which networks may connect to each' },
  { name: 'vms', segment: 'vms', description: 'Virtual machines: placement, migration, connections, egress policies, attributes, service accounts, host keys' },
  { name: 'service-accounts', segment: 'service-accounts', description: 'Service accounts VMs act as' },
  { name: 'shuffle-jobs', segment: 'shuffle-jobs', description: 'Shuffle jobs between worker VMs' },
  { name: 'projects', segment: 'projects', description: 'Projects and the resource graph beneath each' },
  { name: 'images', segment: 'images', description: 'VM images: upload, verification and copies in other regions' },
  { name: 'tokens', segment: 'token-revocations', description: 'API token revocation (operators)' },
  { name: 'storage', segment: 'storage-pools', description: 'Storage pools disks are drawn from (operators)' },
  { name: 'disks', segment: 'disks', description: 'Disks: size, IOPS and throughput, attachment to VMs' },
  { name: 'quotas', segment: 'quotas', description: "Tenants' quotas per region" },
] as const;

function tagOf(operation: Operation): string {
  const segment = operation.path.split('/')[1];
  const tag = tags.find((candidate) => candidate.segment === segment);
  if (!tag) throw new Error(`${operation.operationId}: no tag for the paths under /${segment}; add one to tags`);
  return tag.name;
}

function describe(operation: Operation) {
  return {
    operationId: operation.operationId,
    summary: operation.summary,
    description: `${operation.description ? `${operation.description}\n\n` : ''}Scopes: ${operation.scopes.join(' or ')}.`,
    tags: [tagOf(operation)],
    parameters: parameters(operation),
    ...(operation.body
      ? { requestBody: { required: operation.bodyOptional !== true, content: { 'application/json': { schema: jsonSchemaOf(operation.body, 'input') } } } }
      : {}),
    responses: {
      ...Object.fromEntries(
        Object.entries(operation.responses).map(([status, { description, body }]) => [
          status,
          body ? { description, content: { 'application/json': { schema: jsonSchemaOf(body, 'output') } } } : { description },
        ]),
      ),
      ...commonErrors,
      ...(operation.body ? bodyErrors : {}),
    },
  };
}

/** The OpenAPI 3.1 description of the API, generated from the operations and their schemas. */
export function openApiDocument(serverUrl = '/v1') {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const operation of Object.values<Operation>(operations)) {
    paths[operation.path] ??= {};
    paths[operation.path]![operation.method.toLowerCase()] = describe(operation);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Stratoplane API',
      version: '1',
      description: 'Tenant, host and operator API of the Stratoplane control plane. Every call carries `Authorization: Bearer <token>`.',
    },
    servers: [{ url: serverUrl }],
    security: [{ bearer: [] }],
    tags: tags.map(({ name, description }) => ({ name, description })),
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (ES256, signed through KMS)' } },
      responses: errorResponses,
      schemas: { Error: jsonSchemaOf(ErrorBody, 'output') },
    },
  };
}
