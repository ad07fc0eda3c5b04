import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthorizerSpec, LocalAuthorizer } from './authorizer.ts';
import type { LocalFunction } from './function-host.ts';
import { resourcesOfType, type CfnTemplate } from './template.ts';

export interface Route {
  method: string;
  /** API Gateway resource path, e.g. `/vms/{vmId}/migrate`. */
  resourcePath: string;
  functionLogicalId: string;
  /** Logical id of the method's CUSTOM authorizer, if it has one. */
  authorizerLogicalId?: string;
}

/** Reads the REST API's resources and methods from the template: no second list of routes. */
export function routesOf(template: CfnTemplate): Route[] {
  const resources = template.Resources;
  const pathOf = (parent: unknown): string => {
    const ref = (parent as { Ref?: string }).Ref;
    if (!ref) return ''; // Fn::GetAtt [RestApi, RootResourceId]
    const props = resources[ref]!.Properties as { ParentId: unknown; PathPart: string };
    return `${pathOf(props.ParentId)}/${props.PathPart}`;
  };
  return resourcesOfType(template, 'AWS::ApiGateway::Method').flatMap(([, method]) => {
    const props = method.Properties as {
      HttpMethod: string;
      ResourceId: unknown;
      Integration?: { Uri?: unknown };
      AuthorizationType?: string;
      AuthorizerId?: { Ref?: string };
    };
    const functionLogicalId = findFunctionArnRef(props.Integration?.Uri);
    if (!functionLogicalId || props.HttpMethod === 'OPTIONS') return [];
    if (props.AuthorizationType && !['NONE', 'CUSTOM'].includes(props.AuthorizationType)) {
      throw new Error(`${props.HttpMethod} ${pathOf(props.ResourceId)}: authorization type ${props.AuthorizationType} is not emulated locally`);
    }
    const authorizerLogicalId = props.AuthorizationType === 'CUSTOM' ? props.AuthorizerId?.Ref : undefined;
    return [{ method: props.HttpMethod, resourcePath: pathOf(props.ResourceId) || '/', functionLogicalId, authorizerLogicalId }];
  });
}

/** The REST API's Lambda authorizers, by logical id. */
export function authorizersOf(template: CfnTemplate): AuthorizerSpec[] {
  return resourcesOfType(template, 'AWS::ApiGateway::Authorizer').map(([logicalId, resource]) => {
    const props = resource.Properties as {
      Type: 'TOKEN' | 'REQUEST';
      AuthorizerUri: unknown;
      IdentitySource?: string;
      IdentityValidationExpression?: string;
      AuthorizerResultTtlInSeconds?: number;
    };
    const functionLogicalId = findFunctionArnRef(props.AuthorizerUri);
    if (!functionLogicalId) throw new Error(`authorizer ${logicalId} does not name a function of this template`);
    const header = /^method\.request\.header\.(.+)$/.exec(props.IdentitySource ?? '')?.[1];
    if (props.Type === 'TOKEN' && !header) throw new Error(`authorizer ${logicalId}: identity source ${props.IdentitySource} is not a header`);
    return {
      logicalId,
      functionLogicalId,
      type: props.Type,
      identityHeader: header ?? 'Authorization',
      validation: props.IdentityValidationExpression ? new RegExp(props.IdentityValidationExpression) : undefined,
      ttlSeconds: props.AuthorizerResultTtlInSeconds ?? 300,
    };
  });
}

/** What the gateway answers itself, as the template customizes it (emulated locally for unknown routes only). */
export interface GatewayResponse {
  status?: number;
  headers: Record<string, string>;
  /** The `application/json` template; static text only (no `$context` variables are filled in locally). */
  body?: string;
}

/** The REST API's gateway responses, by response type (`MISSING_AUTHENTICATION_TOKEN`, `DEFAULT_4XX`, ...). */
export function gatewayResponsesOf(template: CfnTemplate): Map<string, GatewayResponse> {
  return new Map(
    resourcesOfType(template, 'AWS::ApiGateway::GatewayResponse').map(([, resource]) => {
      const props = resource.Properties as {
        ResponseType: string;
        StatusCode?: string;
        ResponseTemplates?: Record<string, string>;
        ResponseParameters?: Record<string, string>;
      };
      const headers = Object.fromEntries(
        Object.entries(props.ResponseParameters ?? {}).flatMap(([name, value]) => {
          const header = /^gatewayresponse\.header\.(.+)$/.exec(name)?.[1];
          // Only literal values ('...'); values taken from the request are not emulated.
          const literal = /^'(.*)'$/.exec(value)?.[1];
          return header && literal !== undefined ? [[header, literal]] : [];
        }),
      );
      return [
        props.ResponseType,
        { status: props.StatusCode ? Number(props.StatusCode) : undefined, headers, body: props.ResponseTemplates?.['application/json'] },
      ] as const;
    }),
  );
}

function findFunctionArnRef(value: unknown): string | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findFunctionArnRef(item);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === 'object') {
    const getAtt = (value as Record<string, unknown>)['Fn::GetAtt'];
    if (Array.isArray(getAtt) && getAtt[1] === 'Arn') return getAtt[0] as string;
    return findFunctionArnRef(Object.values(value));
  }
  return undefined;
}

interface CompiledRoute extends Route {
  pattern: RegExp;
  names: string[];
  literalSegments: number;
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const segments = route.resourcePath.split('/').filter(Boolean);
  const pattern = segments
    .map((segment) => {
      const match = /^\{(.+?)(\+)?\}$/.exec(segment);
      if (!match) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      names.push(match[1]!);
      return match[2] ? '(.+)' : '([^/]+)';
    })
    .join('/');
  return { ...route, names, pattern: new RegExp(`^/${pattern}/?$`), literalSegments: segments.filter((segment) => !segment.startsWith('{')).length };
}

const MAX_BODY_BYTES = 10 * 1024 * 1024;
const INTEGRATION_TIMEOUT_MS = 29_000;

/**
 * Serves a REST API's routes on 127.0.0.1 as API Gateway's Lambda proxy integration does:
 * same event shape (v1), same answer for unknown routes (403, or the template's gateway
 * response for MISSING_AUTHENTICATION_TOKEN) and 502 for a failed function.
 */
export async function serveApi(options: {
  routes: Route[];
  functions: Map<string, LocalFunction>;
  authorizers: Map<string, LocalAuthorizer>;
  /** Prefix of method ARNs handed to authorizers: `arn:aws:execute-api:REGION:ACCOUNT:API_ID`. */
  executeApiArn: string;
  stage: string;
  port: number;
  log: (message: string) => void;
  /** The template's gateway responses (see `gatewayResponsesOf`). */
  gatewayResponses?: Map<string, GatewayResponse>;
  /** Local-only diagnostics, answered on `GET /_local/<name>` (outside the stage, so never a route). */
  diagnostics?: Record<string, () => unknown>;
}): Promise<{ url: string; close: () => Promise<void> }> {
  // More literal segments first, so /vms/{vmId}/migrate never matches a greedy parameter route.
  const compiled = options.routes.map(compile).sort((a, b) => b.literalSegments - a.literalSegments);
  const stagePrefix = `/${options.stage}`;

  const server = http.createServer((request, response) => {
    // Whatever a client sends, the gateway answers and stays up.
    handle(request, response).catch((error: Error) => {
      const malformed = error instanceof MalformedRequestError;
      if (!malformed) options.log(`${request.method} ${request.url}: gateway error: ${error.stack ?? error.message}`);
      if (response.headersSent) return void response.destroy();
      response.writeHead(malformed ? 400 : 500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ message: malformed ? error.message : 'Internal server error' }));
    });
  });
  const handle = async (request: http.IncomingMessage, response: http.ServerResponse) => {
    const send = (status: number, headers: Record<string, string>, body: string | Buffer) => {
      response.writeHead(status, headers);
      response.end(body);
    };
    const url = new URL(request.url ?? '/', 'http://localhost');
    const diagnostic =
      request.method === 'GET' && url.pathname.startsWith('/_local/') ? options.diagnostics?.[url.pathname.slice('/_local/'.length)] : undefined;
    if (diagnostic) return send(200, { 'content-type': 'application/json' }, JSON.stringify(diagnostic(), null, 2));
    if (url.pathname !== stagePrefix && !url.pathname.startsWith(`${stagePrefix}/`)) {
      return send(403, { 'content-type': 'application/json' }, JSON.stringify({ message: 'Forbidden' }));
    }
    const path = url.pathname.slice(stagePrefix.length) || '/';
    const candidates = compiled.filter((route) => route.pattern.test(path));
    const route = candidates.find((candidate) => candidate.method === request.method || candidate.method === 'ANY');
    if (!route) {
      // As API Gateway: the response type's own customization, else DEFAULT_4XX's, else its default.
      const custom = options.gatewayResponses?.get('MISSING_AUTHENTICATION_TOKEN') ?? options.gatewayResponses?.get('DEFAULT_4XX');
      return send(
        custom?.status ?? 403,
        { 'content-type': 'application/json', ...custom?.headers },
        custom?.body ?? JSON.stringify({ message: 'Missing Authentication Token' }),
      );
    }

    let authorizerContext: Record<string, unknown> | undefined;
    if (route.authorizerLogicalId) {
      const authorizer = options.authorizers.get(route.authorizerLogicalId);
      if (!authorizer)
        return send(500, { 'content-type': 'application/json' }, JSON.stringify({ message: `authorizer ${route.authorizerLogicalId} is not running` }));
      const decision = await authorizer.authorize(request.headers, `${options.executeApiArn}/${options.stage}/${request.method}${path}`);
      if (!decision.allowed) return send(decision.status, { 'content-type': 'application/json' }, JSON.stringify({ message: decision.message }));
      authorizerContext = { ...decision.context, principalId: decision.principalId };
    }

    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of request) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return send(413, { 'content-type': 'application/json' }, JSON.stringify({ message: 'Request Too Long' }));
      chunks.push(chunk as Buffer);
    }
    const body = Buffer.concat(chunks);
    const match = route.pattern.exec(path)!;
    const event = toProxyEvent(request, url, path, route, match, body, options.stage, authorizerContext);

    const fn = options.functions.get(route.functionLogicalId);
    if (!fn) return send(500, { 'content-type': 'application/json' }, JSON.stringify({ message: `function ${route.functionLogicalId} is not running` }));
    try {
      const result = await Promise.race([
        fn.invoke<{
          statusCode: number;
          headers?: Record<string, string>;
          multiValueHeaders?: Record<string, string[]>;
          body?: string;
          isBase64Encoded?: boolean;
        }>(event),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('Endpoint request timed out')), INTEGRATION_TIMEOUT_MS).unref()),
      ]);
      if (!result || typeof result.statusCode !== 'number') throw new Error('malformed Lambda proxy response');
      const headers: Record<string, string> = { ...(result.headers ?? {}) };
      for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) headers[name] = values.join(', ');
      send(result.statusCode, headers, result.isBase64Encoded ? Buffer.from(result.body ?? '', 'base64') : (result.body ?? ''));
    } catch (error) {
      options.log(`${request.method} ${path}: ${(error as Error).message}`);
      send(502, { 'content-type': 'application/json' }, JSON.stringify({ message: 'Internal server error' }));
    }
  };
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(options.port, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${stagePrefix}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

class MalformedRequestError extends Error {}

function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new MalformedRequestError(`the path segment ${segment.slice(0, 100)} is not valid percent-encoding`);
  }
}

function toProxyEvent(
  request: http.IncomingMessage,
  url: URL,
  path: string,
  route: CompiledRoute,
  match: RegExpExecArray,
  body: Buffer,
  stage: string,
  authorizer: Record<string, unknown> | undefined,
) {
  // Names come from the client: `constructor` or `__proto__` must be keys like any other.
  const headers: Record<string, string> = Object.create(null);
  const multiValueHeaders: Record<string, string[]> = Object.create(null);
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    const name = request.rawHeaders[i]!;
    const value = request.rawHeaders[i + 1]!;
    headers[name] = value;
    multiValueHeaders[name] ??= [];
    multiValueHeaders[name].push(value);
  }
  const query: Record<string, string> = Object.create(null);
  const multiQuery: Record<string, string[]> = Object.create(null);
  for (const [name, value] of url.searchParams) {
    query[name] = value;
    multiQuery[name] ??= [];
    multiQuery[name].push(value);
  }
  const pathParameters = Object.fromEntries(route.names.map((name, index) => [name, decodePathSegment(match[index + 1]!)]));
  const isText = body.length === 0 || /json|text|xml|form/.test(request.headers['content-type'] ?? 'application/json');
  return {
    resource: route.resourcePath,
    path,
    httpMethod: request.method,
    headers,
    multiValueHeaders,
    queryStringParameters: url.searchParams.size ? query : null,
    multiValueQueryStringParameters: url.searchParams.size ? multiQuery : null,
    pathParameters: route.names.length ? pathParameters : null,
    stageVariables: null,
    requestContext: {
      resourcePath: route.resourcePath,
      httpMethod: request.method,
      path: `/${stage}${path}`,
      stage,
      requestId: randomUUID(),
      requestTimeEpoch: Date.now(),
      ...(authorizer ? { authorizer } : {}),
      identity: { sourceIp: request.socket.remoteAddress ?? '127.0.0.1', userAgent: request.headers['user-agent'] ?? '' },
      protocol: `HTTP/${request.httpVersion}`,
    },
    body: body.length === 0 ? null : isText ? body.toString('utf8') : body.toString('base64'),
    isBase64Encoded: body.length > 0 && !isText,
  };
}
