import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { createServiceAccount } from '../service-accounts.ts';

export const handler = apiHandler(operations.createServiceAccount, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createServiceAccount(tableName, tenantOf(caller), body),
}));
