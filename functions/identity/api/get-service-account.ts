import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { getServiceAccount } from '../service-accounts.ts';

export const handler = apiHandler(operations.getServiceAccount, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getServiceAccount(tableName, tenantOf(caller), path.serviceAccountId),
}));
