import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { putQuota } from '../quotas.ts';

/** Operators only (the route's scope): a tenant never sets its own limits. */
export const handler = apiHandler(operations.putQuota, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await putQuota(tableName, path.tenantId, currentRegion, body, `${caller.kind}:${caller.id}`),
}));
