import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { migrateVm } from '../domain/vms.ts';
import { tenantOf } from '../domain/access.ts';

export const handler = apiHandler(operations.migrateVm, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await migrateVm(tableName, currentRegion, tenantOf(caller), path.vmId, body.targetHostId),
}));
