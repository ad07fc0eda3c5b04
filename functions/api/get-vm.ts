import { PathWithId } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { getVm, toVmView } from '../domain/vms.ts';

export const handler = apiHandler({ path: PathWithId('vmId') }, async ({ path }) => ({
  statusCode: 200,
  body: toVmView(await getVm(tableName, path.vmId)),
}));
