import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { changePower } from '../vm-power.ts';

export const handler = apiHandler(operations.rebootVm, async ({ path, caller }) => ({
  statusCode: 200,
  body: await changePower(tableName, currentRegion, tenantOf(caller), path.vmId, 'reboot'),
}));
