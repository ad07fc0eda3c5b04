import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { forwardingTableOf } from '../domain/forwarding-table.ts';
import { assertActsForHost } from '../domain/access.ts';

export const handler = apiHandler(operations.getForwardingTable, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await forwardingTableOf(tableName, path.hostId) };
});
