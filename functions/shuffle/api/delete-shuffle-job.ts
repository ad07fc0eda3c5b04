import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { deleteShuffleJob } from '../shuffle-jobs.ts';
import { deleteShuffleQueue } from '../../platform/shuffle-queues.ts';

export const handler = apiHandler(operations.deleteShuffleJob, async ({ path, caller }) => {
  await deleteShuffleJob(tableName, tenantOf(caller), path.jobId, deleteShuffleQueue);
  return { statusCode: 204 };
});
