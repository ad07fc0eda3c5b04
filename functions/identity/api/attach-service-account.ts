import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { attachServiceAccount } from '../service-accounts.ts';

export const handler = apiHandler(operations.attachServiceAccount, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await attachServiceAccount(tableName, currentRegion, tenantOf(caller), path.vmId, body.serviceAccountId),
}));
