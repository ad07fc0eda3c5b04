import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { sendToHostQueue } from '../../platform/host-queues.ts';
import { fanOutEndpointNow } from '../../host-sync/fast-path.ts';
import { deleteVm } from '../vms.ts';
import { tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.deleteVm, async ({ path, caller }) => {
  const { networkId, released } = await deleteVm(tableName, currentRegion, tenantOf(caller), path.vmId);
  // The hosts of its network forget the address now, not a stream poll later.
  await fanOutEndpointNow(tableName, currentRegion, networkId, released, sendToHostQueue);
  return { statusCode: 204 };
});
