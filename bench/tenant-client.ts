import type { LocalStack } from '../local/local-stack.ts';

/** A tenant's API calls against a local stack: the parsed body, or an error naming the call. */
export async function tenantClient(stack: LocalStack, tenantId: string) {
  const authorization = `Bearer ${await stack.issueToken('tenant', tenantId)}`;
  return async (method: string, route: string, body?: unknown): Promise<any> => {
    const response = await fetch(`${stack.runner.apiUrl}${route}`, { method, headers: { authorization }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
}
