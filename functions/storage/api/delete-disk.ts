import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { deleteDisk } from '../disks.ts';

export const handler = apiHandler(operations.deleteDisk, async ({ path, caller }) => {
  await deleteDisk(tableName, currentRegion, tenantOf(caller), path.diskId);
  return { statusCode: 204 };
});
