import { ListVmsQuery } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { listVms } from '../domain/vms.ts';

export const handler = apiHandler({ query: ListVmsQuery }, async ({ query }) => ({
  statusCode: 200,
  body: await listVms(tableName, query),
}));
