import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { listHosts, toHostView } from '../hosts.ts';

export const handler = apiHandler(operations.listHosts, async () => ({
  statusCode: 200,
  body: { hosts: (await listHosts(tableName)).map(toHostView) },
}));
