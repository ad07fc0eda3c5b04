import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { describeImage } from '../image-copies.ts';

export const handler = apiHandler(operations.getImage, async ({ path, caller }) => ({
  statusCode: 200,
  body: await describeImage(tableName, caller.kind === 'operator' ? undefined : caller.id, path.imageId),
}));
