import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { listDisks } from '../disks.ts';

export const handler = apiHandler(operations.listDisks, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listDisks(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
