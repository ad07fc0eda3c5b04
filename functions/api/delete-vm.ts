import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { deleteVm } from '../domain/vms.ts';
import { tenantOf } from '../domain/access.ts';

export const handler = apiHandler(operations.deleteVm, async ({ path, caller }) => {
  await deleteVm(tableName, currentRegion, tenantOf(caller), path.vmId);
  return { statusCode: 204 };
});
