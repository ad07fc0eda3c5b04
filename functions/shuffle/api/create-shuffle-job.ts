import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { createShuffleJob } from '../shuffle-jobs.ts';
import { ensureShuffleQueue } from '../../platform/shuffle-queues.ts';

export const handler = apiHandler(operations.createShuffleJob, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createShuffleJob(tableName, currentRegion, tenantOf(caller), body, ensureShuffleQueue),
}));
