import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { allowSource } from '../allowed-sources.ts';

export const handler = apiHandler(operations.allowSource, async ({ path, caller }) => ({
  statusCode: 200,
  body: await allowSource(tableName, currentRegion, tenantOf(caller), path.networkId, path.sourceNetworkId),
}));
