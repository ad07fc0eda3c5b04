import type { PrincipalKind } from '#events/tokens.ts';
import type { LocalStack } from '../local/local-stack.ts';

/** API calls as one principal against a local stack: the parsed body, or an error naming the call. */
export async function apiClient(stack: LocalStack, kind: PrincipalKind, id: string) {
  const authorization = `Bearer ${await stack.issueToken(kind, id)}`;
  return async (method: string, route: string, body?: unknown): Promise<any> => {
    const response = await fetch(`${stack.runner.apiUrl}${route}`, { method, headers: { authorization }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
}
