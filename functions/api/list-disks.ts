import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { listDisks } from '../domain/disks.ts';

export const handler = apiHandler(operations.listDisks, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listDisks(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
