import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { createDisk } from '../disks.ts';

export const handler = apiHandler(operations.createDisk, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createDisk(tableName, currentRegion, tenantOf(caller), body),
}));
