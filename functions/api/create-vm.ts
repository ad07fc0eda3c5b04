import { operations } from '#events/operations.ts';
import { requiredEnv } from '../commons/env.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { createVm } from '../domain/vms.ts';
import { actingTenantOf, assertOperatorFor } from '../domain/access.ts';
import { newPairKeyCiphertext } from '../domain/pair-keys.ts';

const placement = { region: currentRegion, imagesBucket: requiredEnv('IMAGES_BUCKET') };

export const handler = apiHandler(operations.createVm, async ({ body, caller }) => {
  // Tenants do not pick physical hosts; operators may, for a tenant they name.
  if (body.hostId !== undefined) assertOperatorFor(caller, 'hostId', 'tenants do not pick hosts: leave it out and placement picks one with room, or use spreadFrom to keep VMs apart');
  return { statusCode: 201, body: await createVm(tableName, actingTenantOf(caller, body.tenantId), body, placement, newPairKeyCiphertext) };
});
