import { operations } from '#events/operations.ts';
import { setting } from '../../platform/env.ts';
import { currentRegion } from '../../platform/region.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { createImage } from '../images.ts';

const bucket = setting('imagesBucket');

export const handler = apiHandler(operations.createImage, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createImage(tableName, bucket, currentRegion, tenantOf(caller), body),
}));
