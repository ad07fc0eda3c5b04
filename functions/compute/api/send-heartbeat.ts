import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { ForbiddenError } from '../../core/errors.ts';
import { recordHeartbeat } from '../host-liveness.ts';

export const handler = apiHandler(operations.sendHeartbeat, async ({ path, caller }) => {
  // Only the host itself: an operator saying a host is alive would hide that it is not.
  if (caller.kind !== 'host' || caller.id !== path.hostId) throw new ForbiddenError(`only host ${path.hostId} says it is alive`);
  await recordHeartbeat(livenessTableName, path.hostId);
  return { statusCode: 204 };
});
