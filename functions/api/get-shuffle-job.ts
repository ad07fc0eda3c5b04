import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { getShuffleJob } from '../domain/shuffle-jobs.ts';

export const handler = apiHandler(operations.getShuffleJob, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getShuffleJob(tableName, tenantOf(caller), path.jobId),
}));
