import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { disallowSource } from '../domain/allowed-sources.ts';

export const handler = apiHandler(operations.disallowSource, async ({ path, caller }) => {
  await disallowSource(tableName, currentRegion, tenantOf(caller), path.networkId, path.sourceNetworkId);
  return { statusCode: 204 };
});
