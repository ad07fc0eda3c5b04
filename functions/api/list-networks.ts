import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { listNetworks } from '../domain/networks.ts';
import { tenantOf } from '../domain/access.ts';

export const handler = apiHandler(operations.listNetworks, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listNetworks(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
