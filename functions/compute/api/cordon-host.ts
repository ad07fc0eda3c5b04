import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { setCordon } from '../host-cordons.ts';
import { hostViews } from '../host-liveness.ts';

export const handler = apiHandler(operations.cordonHost, async ({ path }) => {
  const host = await setCordon(tableName, currentRegion, path.hostId, true);
  const [view] = await hostViews(livenessTableName, [host]);
  return { statusCode: 200, body: view! };
});
