import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { setVmAttributes } from '../domain/vm-config.ts';

export const handler = apiHandler(operations.putVmAttributes, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await setVmAttributes(tableName, currentRegion, tenantOf(caller), path.vmId, body.attributes),
}));
