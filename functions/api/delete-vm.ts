import { PathWithId } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { deleteVm } from '../domain/vms.ts';

export const handler = apiHandler({ path: PathWithId('vmId') }, async ({ path }) => {
  await deleteVm(tableName, path.vmId);
  return { statusCode: 204 };
});
