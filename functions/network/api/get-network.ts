import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { getNetwork, toNetworkView } from '../networks.ts';
import { tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.getNetwork, async ({ path, caller }) => ({
  statusCode: 200,
  body: toNetworkView(await getNetwork(tableName, tenantOf(caller), path.networkId)),
}));
