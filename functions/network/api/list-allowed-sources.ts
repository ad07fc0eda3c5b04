import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { listAllowedSources } from '../allowed-sources.ts';

export const handler = apiHandler(operations.listAllowedSources, async ({ path, caller }) => ({
  statusCode: 200,
  body: await listAllowedSources(tableName, tenantOf(caller), path.networkId),
}));
