import { CreateNetworkRequest } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { createNetwork } from '../domain/networks.ts';

export const handler = apiHandler({ body: CreateNetworkRequest }, async ({ body }) => ({
  statusCode: 201,
  body: await createNetwork(tableName, body),
}));
