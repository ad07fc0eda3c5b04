import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { liftPairRevocation } from '../pair-revocations.ts';

export const handler = apiHandler(operations.liftPairRevocation, async ({ path, caller }) => {
  await liftPairRevocation(tableName, currentRegion, caller, path.vmId, path.sourceVmId);
  return { statusCode: 204 };
});
