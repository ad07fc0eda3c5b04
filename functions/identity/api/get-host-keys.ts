import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { getHostKeys } from '../host-keys.ts';

export const handler = apiHandler(operations.getHostKeys, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getHostKeys(tableName, tenantOf(caller), path.vmId),
}));
