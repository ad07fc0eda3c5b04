import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { withHostHealth } from '../vm-reachability.ts';
import { getVmFor, toVmView } from '../vms.ts';

export const handler = apiHandler(operations.getVm, async ({ path, caller }) => {
  // Operators see any tenant's VM (what they created for one, what they migrate).
  const vm = toVmView(await getVmFor(tableName, caller.kind === 'operator' ? undefined : caller.id, path.vmId));
  const [seen] = await withHostHealth(livenessTableName, [vm]);
  return { statusCode: 200, body: seen! };
});
