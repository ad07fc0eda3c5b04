import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { listServiceAccounts } from '../service-accounts.ts';

export const handler = apiHandler(operations.listServiceAccounts, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listServiceAccounts(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
