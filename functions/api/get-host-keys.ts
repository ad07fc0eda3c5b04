import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { getHostKeys } from '../domain/host-keys.ts';

export const handler = apiHandler(operations.getHostKeys, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getHostKeys(tableName, tenantOf(caller), path.vmId),
}));
