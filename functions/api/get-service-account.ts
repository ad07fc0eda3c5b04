import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { getServiceAccount } from '../domain/service-accounts.ts';

export const handler = apiHandler(operations.getServiceAccount, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getServiceAccount(tableName, tenantOf(caller), path.serviceAccountId),
}));
