import { PathWithId } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { getShuffleJob } from '../domain/shuffle-jobs.ts';

export const handler = apiHandler({ scopes: ['tenant:read'], path: PathWithId('jobId') }, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getShuffleJob(tableName, tenantOf(caller), path.jobId),
}));
