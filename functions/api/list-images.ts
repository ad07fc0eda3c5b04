import { ListQuery } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { listImages } from '../domain/images.ts';

export const handler = apiHandler({ scopes: ['tenant:read'], query: ListQuery }, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listImages(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
