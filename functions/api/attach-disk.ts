import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { attachDisk } from '../domain/disks.ts';

export const handler = apiHandler(operations.attachDisk, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await attachDisk(tableName, currentRegion, tenantOf(caller), path.diskId, body.vmId),
}));
