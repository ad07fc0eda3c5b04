import { operations } from '#events/operations.ts';
import { requiredEnv } from '../../platform/env.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { createImage } from '../images.ts';

const bucket = requiredEnv('IMAGES_BUCKET');
const region = requiredEnv('AWS_REGION');

export const handler = apiHandler(operations.createImage, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createImage(tableName, bucket, region, tenantOf(caller), body),
}));
