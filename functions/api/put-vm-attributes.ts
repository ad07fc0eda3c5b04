import { PathWithId } from '#events/api.ts';
import { PutVmAttributesRequest } from '#events/vm-config.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { setVmAttributes } from '../domain/vm-config.ts';

export const handler = apiHandler({ scopes: ['tenant:write'], path: PathWithId('vmId'), body: PutVmAttributesRequest }, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await setVmAttributes(tableName, currentRegion, tenantOf(caller), path.vmId, body.attributes),
}));
