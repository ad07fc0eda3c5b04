import { operations } from '#events/operations.ts';
import { setting } from '../../platform/env.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { createVm } from '../vms.ts';
import { actingTenantOf, assertOperatorFor } from '../../core/access.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';

const placement = { region: currentRegion, imagesBucket: setting('imagesBucket'), livenessTable: livenessTableName };

export const handler = apiHandler(operations.createVm, async ({ body, caller }) => {
  // Tenants do not pick physical hosts; operators may, for a tenant they name.
  if (body.hostId !== undefined)
    assertOperatorFor(caller, 'hostId', 'tenants do not pick hosts: leave it out and placement picks one with room, or use spreadFrom to keep VMs apart');
  return { statusCode: 201, body: await createVm(tableName, actingTenantOf(caller, body.tenantId), body, placement, newPairKeyCiphertext) };
});
