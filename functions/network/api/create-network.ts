import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { createNetwork } from '../networks.ts';
import { tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.createNetwork, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createNetwork(tableName, tenantOf(caller), currentRegion, body),
}));
