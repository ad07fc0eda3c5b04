import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { currentRegion } from '../../platform/region.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';
import { announceMoveAtOnce } from '../../host-sync/move-announcements.ts';
import { driveDrain, startDrain } from '../host-drains.ts';
import { hostViews } from '../host-liveness.ts';

export const handler = apiHandler(operations.drainHost, async ({ path, body }) => {
  const draining = await startDrain(tableName, path.hostId, body.targetHostId);
  const host = await driveDrain(
    {
      table: tableName,
      livenessTable: livenessTableName,
      region: currentRegion,
      newPairKeyCiphertext,
      announce: (vm) => announceMoveAtOnce(tableName, currentRegion, vm),
    },
    draining,
  );
  const [view] = await hostViews(livenessTableName, [host]);
  return { statusCode: 202, body: view! };
});
