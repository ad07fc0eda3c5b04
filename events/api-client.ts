import type { z } from 'zod';
import { bodyErrorStatuses, errorStatuses, operations, type Operation, type OperationId } from './operations.ts';

/**
 * One typed client for the API, derived from `operations`: the CLI, the benches, the tests and the
 * host agent call routes by operation id, and the path, method, request and answer types come from
 * the operation's schemas, never from a second copy.
 *
 *     const api = createApiClient({ baseUrl, token });
 *     const vm = await api.createVm({ body: { name: 'web', networkId } });   // z.output of responses.Vm
 *     await api.getVm({ params: { vmId: vm.vmId } });
 *     await api.call('listVms', { query: { limit: 100 } });
 */

type Operations = typeof operations;
type Op<Id extends OperationId> = Operations[Id];

/** The path parameters of an operation, by name (every one a string). */
export type ApiParams<Id extends OperationId> = z.output<Op<Id>['params']>;
type ParamsPart<Id extends OperationId> = [keyof ApiParams<Id>] extends [never] ? { params?: undefined } : { params: ApiParams<Id> };
type BodyPart<Id extends OperationId> =
  Op<Id> extends { body: infer Body extends z.ZodType }
    ? Op<Id> extends { bodyOptional: true }
      ? { body?: z.input<Body> }
      : { body: z.input<Body> }
    : { body?: undefined };
type QueryPart<Id extends OperationId> = Op<Id> extends { query: infer Query extends z.ZodType } ? { query?: z.input<Query> } : { query?: undefined };

/** What a call of the operation takes: its path parameters, body and query, as their schemas accept them (`z.input`). */
export type ApiRequest<Id extends OperationId> = ParamsPart<Id> & BodyPart<Id> & QueryPart<Id>;

type Responses<Id extends OperationId> = Op<Id>['responses'];
/** The success statuses the operation is described as answering with. */
export type SuccessStatus<Id extends OperationId> = keyof Responses<Id> & number;
type BodyOf<Response> = Response extends { body: infer Body extends z.ZodType } ? z.output<Body> : undefined;

/** What the operation answers on success: the union of its success bodies (`z.output`; undefined for a 204). */
export type ApiResponse<Id extends OperationId> = { [Status in SuccessStatus<Id>]: BodyOf<Responses<Id>[Status]> }[SuccessStatus<Id>];

/** A whole answer: a success with its status and typed body, or an error. */
export type ApiAnswer<Id extends OperationId> =
  | { [Status in SuccessStatus<Id>]: { ok: true; status: Status; body: BodyOf<Responses<Id>[Status]>; headers: Headers } }[SuccessStatus<Id>]
  | { ok: false; status: number; body: unknown; headers: Headers; error: ApiError };

/** The request argument may be left out when nothing in it is required. */
// biome-ignore lint/complexity/noBannedTypes: `{} extends T` is how a type asks whether every property of T is optional.
export type RequestArgs<Id extends OperationId> = {} extends ApiRequest<Id> ? [request?: ApiRequest<Id>] : [request: ApiRequest<Id>];

/** The names the API gives its error statuses (`errorStatuses`, `bodyErrorStatuses`); `Unexpected` for any other status or an answer that is not what the operation describes. */
export type ApiErrorCode = (typeof errorStatuses)[keyof typeof errorStatuses][0] | (typeof bodyErrorStatuses)[keyof typeof bodyErrorStatuses][0] | 'Unexpected';

const codes: Record<number, ApiErrorCode> = Object.fromEntries(
  [...Object.entries(errorStatuses), ...Object.entries(bodyErrorStatuses)].map(([status, [code]]) => [status, code]),
);

/** The API answered, but not with success (or not with what the operation describes). */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly operationId: OperationId,
    readonly method: string,
    /** The concrete path called, without the base URL. */
    readonly path: string,
    readonly status: number,
    readonly code: ApiErrorCode,
    /** The API's own `message`: it names the field, the rule or what to do. */
    readonly detail: string,
    /** Seconds to wait before trying again, when the answer said (`Retry-After`). */
    readonly retryAfterSeconds?: number,
  ) {
    super(`${method} ${path}: ${status} ${code}: ${detail}`);
  }
}

/** The API could not be reached (connection refused, reset, timed out): no answer at all. */
export class ApiUnreachableError extends Error {
  override readonly name = 'ApiUnreachableError';
  constructor(
    readonly operationId: OperationId,
    readonly method: string,
    readonly path: string,
    readonly baseUrl: string,
    cause: unknown,
  ) {
    super(`${method} ${path}: cannot reach ${baseUrl}: ${describeCause(cause)}`, { cause });
  }
}

function describeCause(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? error.cause.message : error.cause;
  return cause ? `${error.message} (${String(cause)})` : error.message;
}

export interface ApiClientOptions {
  /** The API's base URL, stage included (`http://127.0.0.1:3000/v1`). */
  baseUrl: string;
  /** The bearer token, or where to get it: read on every call, so a rotated token takes effect at once. */
  token: string | (() => string | Promise<string>);
  /** Give up on a call after this long; 30 s unless told. */
  timeoutMs?: number;
  /** Parse success bodies with the operation's schema (all, or these operations): an answer it does not describe is an `Unexpected` ApiError. */
  validate?: boolean | readonly OperationId[];
  fetch?: typeof fetch;
}

export type ApiClient = {
  /** Calls the operation: its success body, or an ApiError. */
  call<Id extends OperationId>(operationId: Id, ...request: RequestArgs<Id>): Promise<ApiResponse<Id>>;
  /** Calls the operation and hands back the whole answer, errors included, without throwing for a status. */
  send<Id extends OperationId>(operationId: Id, ...request: RequestArgs<Id>): Promise<ApiAnswer<Id>>;
} & { readonly [Id in OperationId]: (...request: RequestArgs<Id>) => Promise<ApiResponse<Id>> };

/** The concrete path of a call: the template with each parameter URL-encoded, and the query. */
export function pathOf<Id extends OperationId>(operationId: Id, ...[request]: RequestArgs<Id>): string {
  const { path } = operations[operationId];
  const params = (request?.params ?? {}) as Record<string, string>;
  const filled = path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined || value === '') throw new TypeError(`${operationId}: path parameter ${name} is missing`);
    return encodeURIComponent(value);
  });
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries((request?.query ?? {}) as Record<string, unknown>)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
  }
  const query = search.toString();
  return query ? `${filled}?${query}` : filled;
}

function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const validates = (operationId: OperationId) => (Array.isArray(options.validate) ? options.validate.includes(operationId) : options.validate === true);

  async function send<Id extends OperationId>(operationId: Id, ...args: RequestArgs<Id>): Promise<ApiAnswer<Id>> {
    const operation: Operation = operations[operationId];
    const request = args[0];
    const path = pathOf(operationId, ...args);
    const token = typeof options.token === 'function' ? await options.token() : options.token;
    const hasBody = operation.body !== undefined && request?.body !== undefined;
    let response: Response;
    let text: string;
    try {
      response = await doFetch(`${baseUrl}${path}`, {
        method: operation.method,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json', ...(hasBody ? { 'content-type': 'application/json' } : {}) },
        body: hasBody ? JSON.stringify(request.body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw new ApiUnreachableError(operationId, operation.method, path, baseUrl, error);
    }
    let body: unknown;
    let parsed = true;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
      parsed = false;
    }
    const described = operation.responses[response.status];
    const fail = (code: ApiErrorCode, detail: string) => ({
      ok: false as const,
      status: response.status,
      body,
      headers: response.headers,
      error: new ApiError(operationId, operation.method, path, response.status, code, detail, parseRetryAfter(response.headers.get('retry-after'))),
    });
    if (!response.ok) {
      const message =
        typeof (body as { message?: unknown } | undefined)?.message === 'string' ? (body as { message: string }).message : text || response.statusText;
      return fail(codes[response.status] ?? 'Unexpected', message);
    }
    if (!described) return fail('Unexpected', `status ${response.status} is not one ${operationId} answers with: ${text.slice(0, 200)}`);
    if (!parsed) return fail('Unexpected', `the answer is not JSON: ${text.slice(0, 200)}`);
    if (validates(operationId)) {
      const checked = described.body ? described.body.safeParse(body) : { success: body === undefined, data: undefined, error: undefined };
      if (!checked.success) return fail('Unexpected', `the answer is not what ${operationId} describes: ${checked.error?.message ?? 'expected no body'}`);
      body = checked.data;
    }
    return { ok: true, status: response.status, body, headers: response.headers } as ApiAnswer<Id>;
  }

  async function call<Id extends OperationId>(operationId: Id, ...args: RequestArgs<Id>): Promise<ApiResponse<Id>> {
    const answer = await send(operationId, ...args);
    if (!answer.ok) throw answer.error;
    return answer.body as ApiResponse<Id>;
  }

  const methods = Object.fromEntries(
    (Object.keys(operations) as OperationId[]).map((operationId) => [operationId, (...args: RequestArgs<OperationId>) => call(operationId, ...(args as []))]),
  );
  return { ...methods, call, send } as ApiClient;
}
