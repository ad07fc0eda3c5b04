import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { getVm, toVmView } from '../vms.ts';
import { tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.getVm, async ({ path, caller }) => ({
  statusCode: 200,
  body: toVmView(await getVm(tableName, tenantOf(caller), path.vmId)),
}));
