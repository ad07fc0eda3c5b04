import { RegisterHostRequest } from '#events/api.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { registerHost } from '../domain/hosts.ts';
import { ensureHostQueue } from '../domain/host-queues.ts';

export const handler = apiHandler({ body: RegisterHostRequest }, async ({ body }) => {
  const { host, created } = await registerHost(tableName, body, ensureHostQueue);
  return { statusCode: created ? 201 : 200, body: host };
});
