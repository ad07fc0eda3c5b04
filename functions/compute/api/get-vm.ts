import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { getVmFor, toVmView } from '../vms.ts';

export const handler = apiHandler(operations.getVm, async ({ path, caller }) => ({
  statusCode: 200,
  // Operators see any tenant's VM (what they created for one, what they migrate).
  body: toVmView(await getVmFor(tableName, caller.kind === 'operator' ? undefined : caller.id, path.vmId)),
}));
