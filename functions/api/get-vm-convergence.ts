import { operations } from '#events/operations.ts';
import { convergenceTableName } from '../commons/convergence-table.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { vmConvergence } from '../domain/convergence.ts';

export const handler = apiHandler(operations.getVmConvergence, async ({ path, caller }) => ({
  statusCode: 200,
  body: await vmConvergence(tableName, convergenceTableName, tenantOf(caller), path.vmId),
}));
