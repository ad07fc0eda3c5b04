import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { deleteServiceAccount } from '../domain/service-accounts.ts';

export const handler = apiHandler(operations.deleteServiceAccount, async ({ path, caller }) => {
  await deleteServiceAccount(tableName, tenantOf(caller), path.serviceAccountId);
  return { statusCode: 204 };
});
