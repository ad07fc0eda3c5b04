import type { Principal } from '#events/tokens.ts';
import { ForbiddenError, NotFoundError, ValidationError } from './errors.ts';
import { getItem } from './store.ts';

/** The tenant a tenant route acts for: tenant scopes are only ever held by tenant principals. */
export function tenantOf(caller: Principal): string {
  if (caller.kind !== 'tenant') throw new ForbiddenError('this route is for tenants');
  return caller.id;
}

/**
 * A field only operators may send (tenants do not pick physical hosts): refused for anyone else
 * with a message naming the field and the scope it needs.
 */
export function assertOperatorFor(caller: Principal, field: string, instead: string): void {
  if (caller.kind === 'operator') return;
  throw new ForbiddenError(`${field}: needs scope operator (${instead})`);
}

/**
 * Who a tenant-or-operator route acts for: a tenant for itself; an operator for the tenant it
 * names (`tenantId`), which it must name.
 */
export function actingTenantOf(caller: Principal, tenantId: string | undefined): string {
  if (caller.kind === 'operator') {
    if (!tenantId) throw new ValidationError('body.tenantId: an operator names the tenant it acts for');
    return tenantId;
  }
  const own = tenantOf(caller);
  if (tenantId !== undefined && tenantId !== own) assertOperatorFor(caller, 'tenantId', 'a tenant acts for itself only; leave it out');
  return own;
}

/** Operators act for any host; a host only for itself. */
export function assertActsForHost(caller: Principal, hostId: string): void {
  if (caller.kind === 'operator') return;
  if (caller.kind === 'host' && caller.id === hostId) return;
  throw new ForbiddenError(`only host ${hostId} or an operator may do this`);
}

/**
 * Reads an item a tenant owns. Another tenant's item is as unknown as one that does not exist:
 * both are the same 404, so existence never leaks across tenants.
 */
export async function getTenantItem<T extends { tenantId: string }>(
  table: string,
  key: { pk: string; sk: string },
  tenantId: string,
  kind: string,
  id: string,
): Promise<T> {
  const item = await getItem<T>(table, key);
  if (!item || item.tenantId !== tenantId) throw new NotFoundError(kind, id);
  return item;
}
