import type { Principal } from '#events/tokens.ts';
import { ForbiddenError } from './errors.ts';

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
