import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { createShuffleJob } from '../domain/shuffle-jobs.ts';
import { ensureShuffleQueue } from '../domain/shuffle-queues.ts';

export const handler = apiHandler(operations.createShuffleJob, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createShuffleJob(tableName, currentRegion, tenantOf(caller), body, ensureShuffleQueue),
}));
