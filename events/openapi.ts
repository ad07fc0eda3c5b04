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

const errorResponses = Object.fromEntries([...Object.values(errorStatuses), ...Object.values(bodyErrorStatuses)].map(([name, description]) => [name, errorResponse(description)]));
const references = (statuses: Record<number, readonly [string, string]>) => Object.fromEntries(Object.entries(statuses).map(([status, [name]]) => [status, { $ref: `#/components/responses/${name}` }]));
const commonErrors = references(errorStatuses);
const bodyErrors = references(bodyErrorStatuses);

function parameters(operation: Operation) {
  const path = Object.entries((jsonSchemaOf(operation.params, 'input').properties ?? {}) as Record<string, JsonSchema>).map(([name, schema]) => ({ name, in: 'path', required: true, schema }));
  if (!operation.query) return path;
  const query = jsonSchemaOf(operation.query, 'input');
  const required = new Set((query.required ?? []) as string[]);
  return [...path, ...Object.entries((query.properties ?? {}) as Record<string, JsonSchema>).map(([name, schema]) => ({ name, in: 'query', required: required.has(name), schema }))];
}

function describe(operation: Operation) {
  return {
    operationId: operation.operationId,
    summary: operation.summary,
    description: `Scopes: ${operation.scopes.join(' or ')}.`,
    tags: [operation.path.split('/')[1]!],
    parameters: parameters(operation),
    ...(operation.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchemaOf(operation.body, 'input') } } } } : {}),
    responses: {
      ...Object.fromEntries(
        Object.entries(operation.responses).map(([status, { description, body }]) => [status, body ? { description, content: { 'application/json': { schema: jsonSchemaOf(body, 'output') } } } : { description }]),
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
    (paths[operation.path] ??= {})[operation.method.toLowerCase()] = describe(operation);
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
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT (ES256, signed through KMS)' } },
      responses: errorResponses,
      schemas: { Error: jsonSchemaOf(ErrorBody, 'output') },
    },
  };
}
