import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { actingTenantOf, assertOperatorFor } from '../../core/access.ts';
import { createDisk } from '../disks.ts';

export const handler = apiHandler(operations.createDisk, async ({ body, caller }) => {
  // Tenants do not pick storage pools; operators may, for a tenant they name.
  if (body.poolId !== undefined) assertOperatorFor(caller, 'poolId', 'tenants do not pick storage pools: leave it out and placement picks one with room');
  return { statusCode: 201, body: await createDisk(tableName, currentRegion, actingTenantOf(caller, body.tenantId), body) };
});
