import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { listImages } from '../images.ts';

export const handler = apiHandler(operations.listImages, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listImages(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
