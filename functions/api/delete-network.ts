import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { deleteNetwork } from '../domain/networks.ts';

export const handler = apiHandler(operations.deleteNetwork, async ({ path, caller }) => {
  await deleteNetwork(tableName, currentRegion, tenantOf(caller), path.networkId);
  return { statusCode: 204 };
});
