import { MigrateVmRequest, PathWithId } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { migrateVm } from '../domain/vms.ts';

export const handler = apiHandler({ path: PathWithId('vmId'), body: MigrateVmRequest }, async ({ path, body }) => ({
  statusCode: 200,
  body: await migrateVm(tableName, path.vmId, body.targetHostId),
}));
