import { operations } from '#events/operations.ts';
import { convergenceTableName } from '../../platform/convergence-table.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { tenantOf } from '../../core/access.ts';
import { vmConvergence } from '../convergence.ts';

export const handler = apiHandler(operations.getVmConvergence, async ({ path, caller }) => ({
  statusCode: 200,
  // Operators follow the migrations they start, of any tenant's VM.
  body: await vmConvergence(tableName, convergenceTableName, caller.kind === 'operator' ? undefined : tenantOf(caller), path.vmId),
}));
