import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { detachDisk } from '../domain/disks.ts';

export const handler = apiHandler(operations.detachDisk, async ({ path, caller }) => ({
  statusCode: 200,
  body: await detachDisk(tableName, currentRegion, tenantOf(caller), path.diskId),
}));
