import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { getConsoleOutput } from '../vm-power.ts';

export const handler = apiHandler(operations.getVmConsoleOutput, async ({ path, caller }) => ({
  statusCode: 200,
  body: await getConsoleOutput(tableName, tenantOf(caller), path.vmId),
}));
