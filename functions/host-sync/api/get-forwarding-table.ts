import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { forwardingTableOf } from '../forwarding-table.ts';
import { assertActsForHost } from '../../core/access.ts';

export const handler = apiHandler(operations.getForwardingTable, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await forwardingTableOf(tableName, path.hostId) };
});
