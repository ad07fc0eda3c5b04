import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { z } from 'zod';
import type { Operation } from '#events/operations.ts';
import { ScopeList, Subject, principalOf, type Principal } from '#events/tokens.ts';
import { DynamoDBServiceException } from '@aws-sdk/client-dynamodb';
import { ClientError, ForbiddenError, UnauthorizedError, UnsupportedMediaTypeError, ValidationError } from '../core/errors.ts';
import { logger } from '../platform/logger.ts';

export interface ApiInput<B, P, Q> {
  body: B;
  path: P;
  query: Q;
  /** Who called, as the API's authorizer verified it. */
  caller: Principal;
}

export interface ApiResult {
  statusCode: number;
  body?: unknown;
}

type BodyOf<O> = O extends { body: infer B extends z.ZodType } ? z.infer<B> : undefined;
type QueryOf<O> = O extends { query: infer Q extends z.ZodType } ? z.infer<Q> : undefined;

/**
 * Wraps a route: checks the caller's scope, validates body, path and query with the operation's
 * shared schemas, calls the domain function, and turns domain errors into 4xx answers. Anything
 * unexpected is logged and answered with a bare 500 so internals never leak to tenants.
 */
export function apiHandler<O extends Operation>(operation: O, run: (input: ApiInput<BodyOf<O>, z.infer<O['params']>, QueryOf<O>>) => Promise<ApiResult>) {
  return (
    middy<APIGatewayProxyEvent, APIGatewayProxyResult>()
      // Route functions share one log group: each line names its function and request.
      .use(injectLambdaContext(logger))
      .onError(async (request) => {
        request.response = errorResponse(request.error);
      })
      .handler(async (event) => {
        const caller = callerOf(event);
        if (!operation.scopes.some((scope) => caller.scopes.includes(scope))) {
          throw new ForbiddenError(`this route needs scope ${operation.scopes.join(' or ')}`);
        }
        if (operation.body) requireJsonContentType(event);
        const input = {
          caller,
          body: parse('body', operation.body, operation.body ? (operation.bodyOptional && !event.body ? {} : parseJsonBody(event)) : undefined) as BodyOf<O>,
          path: parse('path', operation.params, event.pathParameters ?? {}) as z.infer<O['params']>,
          query: parse('query', operation.query, event.queryStringParameters ?? {}) as QueryOf<O>,
        };
        const result = await run(input);
        return json(result.statusCode, result.body);
      })
  );
}

/** The principal the authorizer put in the request context; a route without one is misconfigured, so nobody gets in. */
function callerOf(event: APIGatewayProxyEvent): Principal {
  const context = event.requestContext?.authorizer;
  const sub = Subject.safeParse(context?.sub);
  const scopes = ScopeList.safeParse(context?.scope ?? '');
  if (!sub.success || !scopes.success) throw new UnauthorizedError();
  try {
    return principalOf(sub.data, scopes.data);
  } catch {
    throw new UnauthorizedError();
  }
}

/**
 * Bodies are JSON: a body declared as anything else (a form, text) is a 415 naming what to send,
 * not a parse error. A body with no Content-Type at all is read as JSON.
 */
function requireJsonContentType(event: APIGatewayProxyEvent): void {
  if (!event.body) return;
  const header = Object.entries(event.headers ?? {}).find(([name]) => name.toLowerCase() === 'content-type')?.[1];
  if (header === undefined) return;
  const mediaType = header.split(';')[0]!.trim().toLowerCase();
  if (mediaType === 'application/json' || /^application\/[\w.-]+\+json$/.test(mediaType)) return;
  throw new UnsupportedMediaTypeError(`content-type: ${mediaType.slice(0, 100) || '(empty)'} is not accepted; send the body as application/json`);
}

function parseJsonBody(event: APIGatewayProxyEvent): unknown {
  if (!event.body) throw new ValidationError('body: a JSON object is required');
  const text = event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return JSON.parse(text);
  } catch {
    throw new ValidationError('body: is not valid JSON');
  }
}

function parse<S extends z.ZodType>(where: string, schema: S | undefined, value: unknown): z.infer<S> {
  if (!schema) return undefined as z.infer<S>;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ValidationError(describeIssues(where, result.error));
}

/** "body.cidr: must be an IPv4 CIDR ..." for the first few issues, so the caller sees which field. */
export function describeIssues(where: string, error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => {
      const path = [where, ...issue.path.map(String)].join('.');
      return issue.code === 'unrecognized_keys' ? `${path}: unknown field(s) ${issue.keys.join(', ')}` : `${path}: ${issue.message}`;
    })
    .join('; ');
}

function errorResponse(error: unknown): APIGatewayProxyResult {
  if (error instanceof ClientError) return json(error.statusCode, { message: error.message }, error.statusCode === 503 ? { 'retry-after': '1' } : {});
  const refused = refusedByTable(error);
  if (refused) {
    logger.warn('the table refused a request as invalid', { error: error as Error });
    return json(400, { message: refused });
  }
  if (isUnavailable(error)) {
    logger.warn('a dependency did not answer', { error: error as Error });
    return json(503, { message: 'the control plane could not reach a service it depends on; retry shortly' }, { 'retry-after': '1' });
  }
  logger.error('unhandled error', { error: error as Error });
  return json(500, { message: 'internal error' });
}

/**
 * DynamoDB's ValidationException: a value the table cannot take (an item over 400 KB, an empty or
 * oversized key, a bad start key) got past the schemas. The caller's request is at fault, so a 400;
 * DynamoDB's own words name table attributes, so the message says what to change instead.
 */
export function refusedByTable(error: unknown): string | undefined {
  if (!(error instanceof DynamoDBServiceException) || error.name !== 'ValidationException') return undefined;
  if (/item size|size of .* exceed|exceeds .*size/i.test(error.message))
    return 'request: the resource would be larger than the table allows (400 KB an item); send less';
  if (/start(ing)? key|ExclusiveStartKey/i.test(error.message)) return 'nextToken: is not a token this API returned for this list';
  return 'request: a value was refused as invalid by the metadata store (too large, empty or of the wrong kind)';
}

/** An AWS call that failed for want of an answer (connection lost, timed out, throttled, a 5xx): worth retrying, not a bug. */
export function isUnavailable(error: unknown): boolean {
  const failure = error as { code?: string; name?: string; $fault?: string; $retryable?: unknown } | undefined;
  if (!failure) return false;
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND'].includes(failure.code ?? '')) return true;
  return failure.name === 'TimeoutError' || Boolean(failure.$retryable) || failure.$fault === 'server';
}

function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? '' : JSON.stringify(body),
  };
}
