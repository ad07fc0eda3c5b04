import { HEARTBEAT_INTERVAL_MS } from '#events/host-health.ts';
import { api } from './api.ts';
import { tokenFor } from './tokens.ts';

/**
 * Heartbeats for hosts a test registered through the API with no agent behind them: what their
 * agents would send, so placement takes them and their VMs are not `unreachable`. Sent as the host
 * (only a host says it is alive) until the test process ends.
 */
export async function keepAlive(...hostIds: string[]): Promise<void> {
  await Promise.all(
    hostIds.map(async (hostId) => {
      const token = await tokenFor('host', hostId);
      const beat = async () => {
        const answer = await api('PUT', `/hosts/${hostId}/heartbeat`, undefined, token);
        if (answer.status !== 204) throw new Error(`heartbeat of host ${hostId}: ${answer.status} ${JSON.stringify(answer.body)}`);
      };
      await beat();
      setInterval(() => void beat().catch(() => {}), HEARTBEAT_INTERVAL_MS).unref();
    }),
  );
}
