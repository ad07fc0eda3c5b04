import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { getNetwork, toNetworkView } from '../domain/networks.ts';
import { tenantOf } from '../domain/access.ts';

export const handler = apiHandler(operations.getNetwork, async ({ path, caller }) => ({
  statusCode: 200,
  body: toNetworkView(await getNetwork(tableName, tenantOf(caller), path.networkId)),
}));
