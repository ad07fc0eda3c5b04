import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { disallowSource } from '../allowed-sources.ts';

export const handler = apiHandler(operations.disallowSource, async ({ path, caller }) => {
  await disallowSource(tableName, currentRegion, tenantOf(caller), path.networkId, path.sourceNetworkId);
  return { statusCode: 204 };
});
