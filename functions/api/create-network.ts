import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { createNetwork } from '../domain/networks.ts';
import { tenantOf } from '../domain/access.ts';

export const handler = apiHandler(operations.createNetwork, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createNetwork(tableName, tenantOf(caller), currentRegion, body),
}));
