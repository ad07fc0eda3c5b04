import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { deleteDisk } from '../domain/disks.ts';

export const handler = apiHandler(operations.deleteDisk, async ({ path, caller }) => {
  await deleteDisk(tableName, currentRegion, tenantOf(caller), path.diskId);
  return { statusCode: 204 };
});
