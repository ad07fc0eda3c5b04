import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { registerHost } from '../domain/hosts.ts';
import { ensureHostQueue } from '../domain/host-queues.ts';
import { assertActsForHost } from '../domain/access.ts';

export const handler = apiHandler(operations.registerHost, async ({ body, caller }) => {
  assertActsForHost(caller, body.hostId);
  const { host, created } = await registerHost(tableName, currentRegion, body, ensureHostQueue);
  return { statusCode: created ? 201 : 200, body: host };
});
