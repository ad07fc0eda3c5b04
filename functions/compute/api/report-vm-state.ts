import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { reportVmState } from '../vm-power.ts';

export const handler = apiHandler(operations.reportVmState, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await reportVmState(tableName, path.hostId, path.vmId, body) };
});
