import { operations } from '#events/operations.ts';
import { setting } from '../../platform/env.ts';
import { currentRegion } from '../../platform/region.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertOperatorFor, tenantOf } from '../../core/access.ts';
import { PUBLIC_IMAGE_OWNER } from '#events/images.ts';
import { createImage } from '../images.ts';

const bucket = setting('imagesBucket');

export const handler = apiHandler(operations.createImage, async ({ body, caller }) => {
  // Public images are the operators'; an operator uploads nothing else (tenants upload their own).
  if (body.public) assertOperatorFor(caller, 'public', 'tenants upload images for themselves: leave it out');
  const owner = body.public ? PUBLIC_IMAGE_OWNER : tenantOf(caller);
  return { statusCode: 201, body: await createImage(tableName, bucket, currentRegion, owner, body) };
});
