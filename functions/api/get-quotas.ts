import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { assertOperatorFor, tenantOf } from '../domain/access.ts';
import { ValidationError } from '../domain/errors.ts';
import { getQuotas } from '../domain/quotas.ts';

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
