import { CreateVmRequest } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { createVm } from '../domain/vms.ts';
import { tenantOf } from '../domain/access.ts';
import { newPairKeyCiphertext } from '../domain/pair-keys.ts';

export const handler = apiHandler({ scopes: ['tenant:write'], body: CreateVmRequest }, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createVm(tableName, tenantOf(caller), body, newPairKeyCiphertext),
}));
