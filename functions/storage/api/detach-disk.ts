import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { detachDisk } from '../disks.ts';

export const handler = apiHandler(operations.detachDisk, async ({ path, caller }) => ({
  statusCode: 200,
  body: await detachDisk(tableName, currentRegion, tenantOf(caller), path.diskId),
}));
