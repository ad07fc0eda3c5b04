import type { Principal } from '#events/tokens.ts';
import { ForbiddenError, NotFoundError } from './errors.ts';
import { getItem } from './store.ts';

/** The tenant a tenant route acts for: tenant scopes are only ever held by tenant principals. */
export function tenantOf(caller: Principal): string {
  if (caller.kind !== 'tenant') throw new ForbiddenError('this route is for tenants');
  return caller.id;
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
export async function getTenantItem<T extends { tenantId: string }>(table: string, key: { pk: string; sk: string }, tenantId: string, kind: string, id: string): Promise<T> {
  const item = await getItem<T>(table, key);
  if (!item || item.tenantId !== tenantId) throw new NotFoundError(kind, id);
  return item;
}
