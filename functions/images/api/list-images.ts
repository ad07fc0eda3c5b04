import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { PUBLIC_IMAGE_OWNER } from '#events/images.ts';
import { imageOwnerOf, listImages } from '../images.ts';

export const handler = apiHandler(operations.listImages, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listImages(tableName, query.owner === 'public' ? PUBLIC_IMAGE_OWNER : imageOwnerOf(caller), query.limit, query.nextToken),
}));
