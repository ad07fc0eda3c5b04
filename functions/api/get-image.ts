import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { describeImage } from '../domain/image-copies.ts';

export const handler = apiHandler(operations.getImage, async ({ path, caller }) => ({
  statusCode: 200,
  body: await describeImage(tableName, tenantOf(caller), path.imageId),
}));
