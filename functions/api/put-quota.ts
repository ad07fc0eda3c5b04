import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { putQuota } from '../domain/quotas.ts';

/** Operators only (the route's scope): a tenant never sets its own limits. */
export const handler = apiHandler(operations.putQuota, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await putQuota(tableName, path.tenantId, currentRegion, body, `${caller.kind}:${caller.id}`),
}));
