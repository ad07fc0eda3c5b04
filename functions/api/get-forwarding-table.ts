import { PathWithId } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { forwardingTableOf } from '../domain/forwarding-table.ts';

export const handler = apiHandler({ path: PathWithId('hostId') }, async ({ path }) => ({
  statusCode: 200,
  body: await forwardingTableOf(tableName, path.hostId),
}));
