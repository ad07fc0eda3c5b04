import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { getVm, toVmView } from '../domain/vms.ts';
import { tenantOf } from '../domain/access.ts';

export const handler = apiHandler(operations.getVm, async ({ path, caller }) => ({
  statusCode: 200,
  body: toVmView(await getVm(tableName, tenantOf(caller), path.vmId)),
}));
