import { CreateVmRequest } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { createVm } from '../domain/vms.ts';

export const handler = apiHandler({ body: CreateVmRequest }, async ({ body }) => ({
  statusCode: 201,
  body: await createVm(tableName, body),
}));
