import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { assertActsForHost } from '../domain/access.ts';
import { reportShuffleWorker } from '../domain/shuffle-jobs.ts';

export const handler = apiHandler(operations.reportShuffleWorker, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await reportShuffleWorker(tableName, path.hostId, path.jobId, path.vmId, body) };
});
