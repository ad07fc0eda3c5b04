import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { getHost } from '../hosts.ts';
import { hostViews } from '../host-liveness.ts';

export const handler = apiHandler(operations.getHost, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  const [view] = await hostViews(livenessTableName, [await getHost(tableName, path.hostId)]);
  return { statusCode: 200, body: view! };
});
