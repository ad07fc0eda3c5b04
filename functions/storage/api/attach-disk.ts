import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { attachDisk } from '../disks.ts';

export const handler = apiHandler(operations.attachDisk, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await attachDisk(tableName, currentRegion, tenantOf(caller), path.diskId, body.vmId),
}));
