import { ListQuery } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { listNetworks } from '../domain/networks.ts';

export const handler = apiHandler({ query: ListQuery }, async ({ query }) => ({
  statusCode: 200,
  body: await listNetworks(tableName, query.limit, query.nextToken),
}));
