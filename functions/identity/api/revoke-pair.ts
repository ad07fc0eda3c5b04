import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { revokePair } from '../pair-revocations.ts';

export const handler = apiHandler(operations.revokePair, async ({ path, caller }) => ({
  statusCode: 200,
  body: await revokePair(tableName, currentRegion, caller, path.vmId, path.sourceVmId),
}));
