import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { checkShuffleHandoff } from '../shuffle-handoffs.ts';

export const handler = apiHandler(operations.checkShuffleHandoff, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await checkShuffleHandoff(tableName, path.hostId, path.jobId, path.vmId, body) };
});
