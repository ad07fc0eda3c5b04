import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { listServiceAccounts } from '../domain/service-accounts.ts';

export const handler = apiHandler(operations.listServiceAccounts, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listServiceAccounts(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
