import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { listHosts, toHostView } from '../domain/hosts.ts';

export const handler = apiHandler(operations.listHosts, async () => ({
  statusCode: 200,
  body: { hosts: (await listHosts(tableName)).map(toHostView) },
}));
