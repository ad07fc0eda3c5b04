import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { listImages } from '../domain/images.ts';

export const handler = apiHandler(operations.listImages, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listImages(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
