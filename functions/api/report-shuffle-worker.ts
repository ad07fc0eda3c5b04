import { z } from 'zod';
import { resourceId } from '#events/identifiers.ts';
import { ShuffleWorkerReport } from '#events/shuffle.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { assertActsForHost } from '../domain/access.ts';
import { reportShuffleWorker } from '../domain/shuffle-jobs.ts';

export const handler = apiHandler(
  { scopes: ['host'], path: z.strictObject({ hostId: resourceId, jobId: resourceId, vmId: resourceId }), body: ShuffleWorkerReport },
  async ({ path, body, caller }) => {
    assertActsForHost(caller, path.hostId);
    return { statusCode: 200, body: await reportShuffleWorker(tableName, path.hostId, path.jobId, path.vmId, body) };
  },
);
