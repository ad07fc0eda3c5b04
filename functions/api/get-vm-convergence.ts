import { operations } from '#events/operations.ts';
import { convergenceTableName } from '../commons/convergence-table.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { vmConvergence } from '../domain/convergence.ts';

export const handler = apiHandler(operations.getVmConvergence, async ({ path, caller }) => ({
  statusCode: 200,
  // Operators follow the migrations they start, of any tenant's VM.
  body: await vmConvergence(tableName, convergenceTableName, caller.kind === 'operator' ? undefined : tenantOf(caller), path.vmId),
}));
