import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { detachServiceAccount } from '../service-accounts.ts';

export const handler = apiHandler(operations.detachServiceAccount, async ({ path, caller }) => ({
  statusCode: 200,
  body: await detachServiceAccount(tableName, currentRegion, tenantOf(caller), path.vmId),
}));
