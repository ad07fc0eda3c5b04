import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { getShuffleJob } from '../shuffle-jobs.ts';

export const handler = apiHandler(operations.getShuffleJob, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getShuffleJob(tableName, tenantOf(caller), path.jobId),
}));
