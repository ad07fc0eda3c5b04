import { inject } from 'vitest';
import type { z } from 'zod';
import { tableKeyAttributes } from '#functions/core/table-keys.ts';
import { describeIssues } from '#functions/triggers/api-handler.ts';
import { createApiClient, pathOf, type ApiRequest, type ApiResponse as ResponseOf, type RequestArgs } from '#events/api-client.ts';
import { documentedStatuses, operationFor, operations, type Operation, type OperationId } from '#events/operations.ts';
import { ErrorBody } from '#events/responses.ts';
import { operatorToken, tenantToken } from './tokens.ts';

/** An answer as the tests see it: its status and its parsed body. */
export interface ApiResponse<T = any> {
  status: number;
  body: T;
}

type ErrorAnswer = z.output<typeof ErrorBody>;

/** What an operation answers: one of its success bodies, or the error body. `expectOk` narrows it to the success. */
export type OperationAnswer<Id extends OperationId> = ApiResponse<ResponseOf<Id> | ErrorAnswer>;

type Token = string | Promise<string>;

/**
 * Calls the local API like a client would, as the default test tenant unless given another token.
 * Raw: any method, path and body (a string is sent as it is), for tests that send what no client
 * would; everything else calls `request` with an operation id.
 */
export async function api<T = any>(method: string, path: string, body?: unknown, token?: Token, apiUrl = inject('apiUrl')): Promise<ApiResponse<T>> {
  const bearer = await (token ?? tenantToken());
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : undefined;
  const operation = operationFor(method, path);
  checkAnswer(`${method} ${path}`, operation, response.status, parsed, text);
  return { status: response.status, body: parsed };
}

/**
 * Calls an operation through the typed API client (events/api-client.ts), as the default test
 * tenant unless given another token, and hands back the answer, errors included, checked as `api`
 * checks every answer.
 */
export async function request<Id extends OperationId>(
  operationId: Id,
  input: ApiRequest<Id>,
  options: { token?: Token; apiUrl?: string } = {},
): Promise<OperationAnswer<Id>> {
  const token = await (options.token ?? tenantToken());
  const client = createApiClient({ baseUrl: options.apiUrl ?? inject('apiUrl'), token, timeoutMs: 120_000 });
  const args = [input] as unknown as RequestArgs<Id>;
  const answer = await client.send(operationId, ...args);
  const operation: Operation = operations[operationId];
  const where = `${operation.method} ${pathOf(operationId, ...args)}`;
  checkAnswer(where, operation, answer.status, answer.body, typeof answer.body === 'string' ? answer.body : (JSON.stringify(answer.body) ?? ''));
  return { status: answer.status, body: answer.body as ResponseOf<Id> | ErrorAnswer };
}

/** The checks every answer a test sees goes through: no storage layout, and a status and body its OpenAPI description documents. */
function checkAnswer(where: string, operation: Operation | undefined, status: number, parsed: unknown, text: string): void {
  const leaked = tableKeyIn(parsed, 'body');
  if (leaked) throw new Error(`${where} answered with the table's own attribute ${leaked}: ${text.slice(0, 500)}`);
  // The API description is checked against every answer the tests see: its status, and its body.
  if (!operation) return;
  if (!documentedStatuses(operation).includes(status)) {
    throw new Error(`${where} answered ${status}, which its OpenAPI description (${operation.operationId}) does not document: ${text.slice(0, 500)}`);
  }
  const schema = status >= 200 && status < 300 ? operation.responses[status]?.body : ErrorBody;
  const checked = schema ? schema.safeParse(parsed) : { success: parsed === undefined, error: undefined };
  if (!checked.success) {
    throw new Error(
      `${where} answered ${status} with a body its OpenAPI description (${operation.operationId}) does not describe: ${checked.error ? describeIssues('body', checked.error) : 'expected none'}: ${text.slice(0, 500)}`,
    );
  }
}

/** Where a table key or index attribute stands in an answer, if anywhere: storage layout must not reach clients. */
function tableKeyIn(value: unknown, where: string): string | undefined {
  if (Array.isArray(value)) return value.map((element, index) => tableKeyIn(element, `${where}[${index}]`)).find(Boolean);
  if (value === null || typeof value !== 'object') return undefined;
  for (const [name, child] of Object.entries(value)) {
    if (tableKeyAttributes.has(name)) return `${where}.${name}`;
    const found = tableKeyIn(child, `${where}.${name}`);
    if (found) return found;
  }
  return undefined;
}

/**
 * Creates a VM on a host the test names. Tenants do not pick hosts (a tenant token naming one is
 * refused), so the operator creates it, for the tenant it names (the default test tenant unless told).
 */
export function createVmOn(
  body: ApiRequest<'createVm'>['body'] & { hostId: string },
  tenantId = 'test-tenant',
  apiUrl?: string,
): Promise<OperationAnswer<'createVm'>> {
  return request('createVm', { body: { ...body, tenantId } }, { token: operatorToken(), apiUrl });
}

/** Migrates a VM to a host the test names: as the operator, since tenants do not pick hosts. */
export function migrateVmTo(vmId: string, targetHostId: string, apiUrl?: string): Promise<OperationAnswer<'migrateVm'>> {
  return request('migrateVm', { params: { vmId }, body: { targetHostId } }, { token: operatorToken(), apiUrl });
}

/** Ids unique to one test file, so files sharing one control plane never collide. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The body of an answer with this status (an error naming what came instead); a typed answer narrows to its success body. */
export async function expectOk<T>(promise: Promise<ApiResponse<T>>, status = 200): Promise<Exclude<T, ErrorAnswer>> {
  const response = await promise;
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body as Exclude<T, ErrorAnswer>;
}
