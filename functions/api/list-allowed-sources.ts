import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { listAllowedSources } from '../domain/allowed-sources.ts';

export const handler = apiHandler(operations.listAllowedSources, async ({ path, caller }) => ({
  statusCode: 200,
  body: await listAllowedSources(tableName, tenantOf(caller), path.networkId),
}));
