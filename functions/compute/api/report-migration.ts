import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';
import { retagQueuesOfWorker } from '../../shuffle/shuffle-jobs.ts';
import { retagShuffleQueue } from '../../platform/shuffle-queues.ts';
import { reportMigration } from '../live-migration.ts';

export const handler = apiHandler(operations.reportMigration, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  const answer = await reportMigration(tableName, path.hostId, path.vmId, body, newPairKeyCiphertext);
  // At the cut-over the VM's host changes: the queues of the shuffle jobs it works for admit the new one.
  if (body.event === 'resumed') await retagQueuesOfWorker(tableName, path.vmId, retagShuffleQueue);
  return { statusCode: 200, body: answer };
});
