import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { registerStoragePool } from '../storage-pools.ts';

export const handler = apiHandler(operations.registerStoragePool, async ({ body }) => {
  const { pool, created } = await registerStoragePool(tableName, currentRegion, body);
  return { statusCode: created ? 201 : 200, body: pool };
});
