import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { deleteVm } from '../vms.ts';
import { tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.deleteVm, async ({ path, caller }) => {
  await deleteVm(tableName, currentRegion, tenantOf(caller), path.vmId);
  return { statusCode: 204 };
});
