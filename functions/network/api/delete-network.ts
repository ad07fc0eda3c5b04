import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { deleteNetwork } from '../networks.ts';

export const handler = apiHandler(operations.deleteNetwork, async ({ path, caller }) => {
  await deleteNetwork(tableName, currentRegion, tenantOf(caller), path.networkId);
  return { statusCode: 204 };
});
