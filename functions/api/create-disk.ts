import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { createDisk } from '../domain/disks.ts';

export const handler = apiHandler(operations.createDisk, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createDisk(tableName, currentRegion, tenantOf(caller), body),
}));
