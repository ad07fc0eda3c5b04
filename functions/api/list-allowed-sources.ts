import { PathWithId } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { listAllowedSources } from '../domain/allowed-sources.ts';

export const handler = apiHandler({ scopes: ['tenant:read'], path: PathWithId('networkId') }, async ({ path, caller }) => ({
  statusCode: 200,
  body: await listAllowedSources(tableName, tenantOf(caller), path.networkId),
}));
