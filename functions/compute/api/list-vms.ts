import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { ValidationError } from '../../core/errors.ts';
import { listVms, listVmsOnHostPage } from '../vms.ts';
import { assertOperatorFor, tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.listVms, async ({ query, caller }) => {
  if (query.hostId !== undefined) assertOperatorFor(caller, 'query.hostId', 'a tenant lists its own VMs: leave it out');
  if (caller.kind !== 'operator') return { statusCode: 200, body: await listVms(tableName, tenantOf(caller), query) };
  // Operators see every tenant's VMs, a host at a time.
  if (query.hostId === undefined) throw new ValidationError('query.hostId: an operator lists the VMs of one host');
  if (query.networkId !== undefined) throw new ValidationError('query.networkId: an operator lists by hostId only');
  return { statusCode: 200, body: await listVmsOnHostPage(tableName, query.hostId, query) };
});
