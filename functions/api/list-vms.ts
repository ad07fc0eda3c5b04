import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { listVms } from '../domain/vms.ts';
import { tenantOf } from '../domain/access.ts';

export const handler = apiHandler(operations.listVms, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listVms(tableName, tenantOf(caller), query),
}));
