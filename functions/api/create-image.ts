import { operations } from '#events/operations.ts';
import { requiredEnv } from '../commons/env.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { createImage } from '../domain/images.ts';

const bucket = requiredEnv('IMAGES_BUCKET');
const region = requiredEnv('AWS_REGION');

export const handler = apiHandler(operations.createImage, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createImage(tableName, bucket, region, tenantOf(caller), body),
}));
