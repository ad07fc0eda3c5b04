import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { listNetworks } from '../networks.ts';
import { tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.listNetworks, async ({ query, caller }) => ({
  statusCode: 200,
  body: await listNetworks(tableName, tenantOf(caller), query.limit, query.nextToken),
}));
