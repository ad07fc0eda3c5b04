import { inject } from 'vitest';
import { tableKeyAttributes } from '#functions/core/table-keys.ts';
import { describeIssues } from '#functions/triggers/api-handler.ts';
import { documentedStatuses, operationFor } from '#events/operations.ts';
import { ErrorBody } from '#events/responses.ts';
import { operatorToken, tenantToken } from './tokens.ts';

export interface ApiResponse<T = any> {
  status: number;
  body: T;
}

/** Calls the local API like a client would, as the default test tenant unless given another token. */
export async function api<T = any>(method: string, path: string, body?: unknown, token?: string | Promise<string>, apiUrl = inject('apiUrl')): Promise<ApiResponse<T>> {
  const bearer = await (token ?? tenantToken());
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : undefined;
  const leaked = tableKeyIn(parsed, 'body');
  if (leaked) throw new Error(`${method} ${path} answered with the table's own attribute ${leaked}: ${text.slice(0, 500)}`);
  // The API description is checked against every answer the tests see: its status, and its body.
  const operation = operationFor(method, path);
  if (operation) {
    if (!documentedStatuses(operation).includes(response.status)) {
      throw new Error(`${method} ${path} answered ${response.status}, which its OpenAPI description (${operation.operationId}) does not document: ${text.slice(0, 500)}`);
    }
    const schema = response.ok ? operation.responses[response.status]?.body : ErrorBody;
    const checked = schema ? schema.safeParse(parsed) : { success: parsed === undefined, error: undefined };
    if (!checked.success) {
      throw new Error(`${method} ${path} answered ${response.status} with a body its OpenAPI description (${operation.operationId}) does not describe: ${checked.error ? describeIssues('body', checked.error) : 'expected none'}: ${text.slice(0, 500)}`);
    }
  }
  return { status: response.status, body: parsed };
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
export function createVmOn<T = any>(body: { name: string; networkId: string; hostId: string; [field: string]: unknown }, tenantId = 'test-tenant', apiUrl?: string): Promise<ApiResponse<T>> {
  return api<T>('POST', '/vms', { ...body, tenantId }, operatorToken(), apiUrl);
}

/** Migrates a VM to a host the test names: as the operator, since tenants do not pick hosts. */
export function migrateVmTo<T = any>(vmId: string, targetHostId: string, apiUrl?: string): Promise<ApiResponse<T>> {
  return api<T>('POST', `/vms/${vmId}/migrate`, { targetHostId }, operatorToken(), apiUrl);
}

/** Ids unique to one test file, so files sharing one control plane never collide. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function expectOk<T = any>(promise: Promise<ApiResponse<T>>, status = 200): Promise<T> {
  const response = await promise;
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${JSON.stringify(response.body)}`);
  return response.body;
}
