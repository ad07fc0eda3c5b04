import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { listPairRevocations } from '../pair-revocations.ts';

export const handler = apiHandler(operations.listPairRevocations, async ({ path, caller }) => ({
  statusCode: 200,
  body: await listPairRevocations(tableName, caller, path.vmId),
}));
