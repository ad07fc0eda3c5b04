import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { listHosts } from '../hosts.ts';
import { hostViews } from '../host-liveness.ts';

export const handler = apiHandler(operations.listHosts, async () => ({
  statusCode: 200,
  body: { hosts: await hostViews(livenessTableName, await listHosts(tableName)) },
}));
