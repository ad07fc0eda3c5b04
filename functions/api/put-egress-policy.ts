import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { setEgressPolicy } from '../domain/vm-config.ts';

export const handler = apiHandler(operations.putEgressPolicy, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await setEgressPolicy(tableName, currentRegion, tenantOf(caller), path.vmId, body),
}));
