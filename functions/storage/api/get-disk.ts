import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { getDisk, toDiskView } from '../disks.ts';

export const handler = apiHandler(operations.getDisk, async ({ path, caller }) => ({
  statusCode: 200,
  body: toDiskView(await getDisk(tableName, tenantOf(caller), path.diskId)),
}));
