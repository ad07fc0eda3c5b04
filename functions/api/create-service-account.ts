import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { createServiceAccount } from '../domain/service-accounts.ts';

export const handler = apiHandler(operations.createServiceAccount, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createServiceAccount(tableName, tenantOf(caller), body),
}));
