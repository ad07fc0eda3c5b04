import { createApiClient, type ApiClient } from '#events/api-client.ts';
import type { PrincipalKind } from '#events/tokens.ts';
import type { LocalStack } from '../local/local-stack.ts';

/** The typed API client as one principal against a local stack: the parsed answer, or an ApiError naming the call. */
export async function apiClient(stack: LocalStack, kind: PrincipalKind, id: string): Promise<ApiClient> {
  return createApiClient({ baseUrl: stack.runner.apiUrl, token: await stack.issueToken(kind, id), timeoutMs: 120_000 });
}
