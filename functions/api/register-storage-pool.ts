import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { registerStoragePool } from '../domain/storage-pools.ts';

export const handler = apiHandler(operations.registerStoragePool, async ({ body }) => {
  const { pool, created } = await registerStoragePool(tableName, currentRegion, body);
  return { statusCode: created ? 201 : 200, body: pool };
});
