import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { attachServiceAccount } from '../domain/service-accounts.ts';

export const handler = apiHandler(operations.attachServiceAccount, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await attachServiceAccount(tableName, currentRegion, tenantOf(caller), path.vmId, body.serviceAccountId),
}));
