import { HEARTBEAT_INTERVAL_MS } from '#events/host-health.ts';
import { createApiClient, type ApiClient } from '#events/api-client.ts';
import type { PrincipalKind } from '#events/tokens.ts';
import type { LocalStack } from '../local/local-stack.ts';

/** The typed API client as one principal against a local stack: the parsed answer, or an ApiError naming the call. */
export async function apiClient(stack: LocalStack, kind: PrincipalKind, id: string): Promise<ApiClient> {
  return createApiClient({ baseUrl: stack.runner.apiUrl, token: await stack.issueToken(kind, id), timeoutMs: 120_000 });
}

/**
 * Heartbeats for hosts a bench registered with no agent behind them, as their agents would send:
 * placement takes only hosts heard from lately. Until the bench process ends.
 */
export async function keepHostsAlive(stack: LocalStack, hostIds: readonly string[]): Promise<void> {
  await Promise.all(
    hostIds.map(async (hostId) => {
      const asHost = await apiClient(stack, 'host', hostId);
      const beat = () => asHost.sendHeartbeat({ params: { hostId } });
      await beat();
      setInterval(() => void beat().catch(() => {}), HEARTBEAT_INTERVAL_MS).unref();
    }),
  );
}
