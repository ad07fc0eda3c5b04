import { operations } from '#events/operations.ts';
import { setting } from '../../platform/env.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { createVm } from '../vms.ts';
import { actingTenantOf, assertOperatorFor } from '../../core/access.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';
import { sendToHostQueue } from '../../platform/host-queues.ts';
import { endpointEntryOf, fanOutEndpointNow } from '../../host-sync/fast-path.ts';

const placement = { region: currentRegion, imagesBucket: setting('imagesBucket'), livenessTable: livenessTableName };

export const handler = apiHandler(operations.createVm, async ({ body, caller }) => {
  // Tenants do not pick physical hosts; operators may, for a tenant they name.
  if (body.hostId !== undefined)
    assertOperatorFor(caller, 'hostId', 'tenants do not pick hosts: leave it out and placement picks one with room, or use spreadFrom to keep VMs apart');
  const vm = await createVm(tableName, actingTenantOf(caller, body.tenantId), body, placement, newPairKeyCiphertext);
  // The hosts of its network hear of its endpoint now, not a stream poll later (its own host, once it joined, by the stream's snapshot).
  await fanOutEndpointNow(tableName, currentRegion, vm.networkId, endpointEntryOf(vm), sendToHostQueue);
  return { statusCode: 201, body: vm };
});
