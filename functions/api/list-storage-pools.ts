import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { listStoragePools } from '../domain/storage-pools.ts';

export const handler = apiHandler(operations.listStoragePools, async () => ({
  statusCode: 200,
  body: { storagePools: await listStoragePools(tableName) },
}));
