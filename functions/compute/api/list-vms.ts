import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { withHostHealth } from '../vm-reachability.ts';
import { ValidationError } from '../../core/errors.ts';
import { listVms, listVmsOnHostPage } from '../vms.ts';
import { assertOperatorFor, tenantOf } from '../../core/access.ts';

export const handler = apiHandler(operations.listVms, async ({ query, caller }) => {
  if (query.hostId !== undefined) assertOperatorFor(caller, 'query.hostId', 'a tenant lists its own VMs: leave it out');
  let page: Awaited<ReturnType<typeof listVms>>;
  if (caller.kind !== 'operator') page = await listVms(tableName, tenantOf(caller), query);
  else {
    // Operators see every tenant's VMs, a host at a time.
    if (query.hostId === undefined) throw new ValidationError('query.hostId: an operator lists the VMs of one host');
    if (query.networkId !== undefined) throw new ValidationError('query.networkId: an operator lists by hostId only');
    page = await listVmsOnHostPage(tableName, query.hostId, query);
  }
  return { statusCode: 200, body: { ...page, vms: await withHostHealth(livenessTableName, page.vms) } };
});
