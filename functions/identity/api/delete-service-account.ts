import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { deleteServiceAccount } from '../service-accounts.ts';

export const handler = apiHandler(operations.deleteServiceAccount, async ({ path, caller }) => {
  await deleteServiceAccount(tableName, tenantOf(caller), path.serviceAccountId);
  return { statusCode: 204 };
});
