import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { registerHost } from '../hosts.ts';
import { ensureHostQueue } from '../../platform/host-queues.ts';
import { assertActsForHost } from '../../core/access.ts';

export const handler = apiHandler(operations.registerHost, async ({ body, caller }) => {
  assertActsForHost(caller, body.hostId);
  const { host, created } = await registerHost(tableName, currentRegion, body, ensureHostQueue);
  return { statusCode: created ? 201 : 200, body: host };
});
