import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { assertOperatorFor, tenantOf } from '../../core/access.ts';
import { ValidationError } from '../../core/errors.ts';
import { getQuotas } from '../quotas.ts';

export const handler = apiHandler(operations.getQuotas, async ({ query, caller }) => {
  // A tenant sees its own quotas only; naming another tenant is an operator's right.
  if (caller.kind !== 'operator') {
    const own = tenantOf(caller);
    if (query.tenantId !== undefined && query.tenantId !== own) assertOperatorFor(caller, 'query.tenantId', 'a tenant reads its own quotas: leave it out');
    return { statusCode: 200, body: await getQuotas(tableName, own, currentRegion) };
  }
  if (query.tenantId === undefined) throw new ValidationError('query.tenantId: an operator names the tenant whose quotas to show');
  return { statusCode: 200, body: await getQuotas(tableName, query.tenantId, currentRegion) };
});
