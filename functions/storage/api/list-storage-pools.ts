import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { listStoragePools } from '../storage-pools.ts';

export const handler = apiHandler(operations.listStoragePools, async () => ({
  statusCode: 200,
  body: { storagePools: await listStoragePools(tableName) },
}));
