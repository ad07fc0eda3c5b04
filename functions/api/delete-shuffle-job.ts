import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { deleteShuffleJob } from '../domain/shuffle-jobs.ts';
import { deleteShuffleQueue } from '../domain/shuffle-queues.ts';

export const handler = apiHandler(operations.deleteShuffleJob, async ({ path, caller }) => {
  await deleteShuffleJob(tableName, tenantOf(caller), path.jobId, deleteShuffleQueue);
  return { statusCode: 204 };
});
