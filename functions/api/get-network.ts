import { PathWithId } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { getNetwork, toNetworkView } from '../domain/networks.ts';

export const handler = apiHandler({ path: PathWithId('networkId') }, async ({ path }) => ({
  statusCode: 200,
  body: toNetworkView(await getNetwork(tableName, path.networkId)),
}));
