import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { registerHost, toHostView } from '../hosts.ts';
import { lastSeenOf, recordHeartbeat } from '../host-liveness.ts';
import { ensureHostQueue } from '../../platform/host-queues.ts';
import { assertActsForHost } from '../../core/access.ts';

export const handler = apiHandler(operations.registerHost, async ({ body, caller }) => {
  assertActsForHost(caller, body.hostId);
  const { host, created } = await registerHost(tableName, currentRegion, body, ensureHostQueue);
  // An agent registering is alive; an operator registering a host says nothing of its agent.
  const now = Date.now();
  if (caller.kind === 'host') await recordHeartbeat(livenessTableName, host.hostId, now);
  const lastSeenMs = caller.kind === 'host' ? now : (await lastSeenOf(livenessTableName, [host.hostId])).get(host.hostId);
  return { statusCode: created ? 201 : 200, body: toHostView(host, { lastSeenMs, cordoned: host.cordoned === true }, now) };
});
