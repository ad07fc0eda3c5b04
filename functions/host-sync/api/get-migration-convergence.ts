import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { convergenceTableName } from '../../platform/convergence-table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { migrationConvergence } from '../migration-convergence.ts';

export const handler = apiHandler(operations.getMigrationConvergence, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await migrationConvergence(tableName, convergenceTableName, path.hostId, path.vmId) };
});
