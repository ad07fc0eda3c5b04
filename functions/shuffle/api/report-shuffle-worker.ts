import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { reportShuffleWorker } from '../shuffle-jobs.ts';
import { retagShuffleQueue } from '../../platform/shuffle-queues.ts';

export const handler = apiHandler(operations.reportShuffleWorker, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await reportShuffleWorker(tableName, path.hostId, path.jobId, path.vmId, body, retagShuffleQueue) };
});
