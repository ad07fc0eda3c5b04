import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { getDisk, toDiskView } from '../domain/disks.ts';

export const handler = apiHandler(operations.getDisk, async ({ path, caller }) => ({
  statusCode: 200,
  body: toDiskView(await getDisk(tableName, tenantOf(caller), path.diskId)),
}));
