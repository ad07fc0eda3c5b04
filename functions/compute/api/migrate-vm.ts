import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { migrateVm } from '../vms.ts';
import { announceMoveAtOnce } from '../../host-sync/move-announcements.ts';
import { assertOperatorFor, tenantOf } from '../../core/access.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';

export const handler = apiHandler(operations.migrateVm, async ({ path, body, caller }) => {
  // Tenants do not pick physical hosts: placement does, away from the current one. Operators may name it, for any tenant's VM.
  if (body.targetHostId !== undefined)
    assertOperatorFor(caller, 'targetHostId', 'tenants do not pick hosts: leave it out and placement picks another host with room');
  const tenantId = caller.kind === 'operator' ? undefined : tenantOf(caller);
  const vm = await migrateVm(tableName, { region: currentRegion, livenessTable: livenessTableName }, tenantId, path.vmId, body, newPairKeyCiphertext);
  // A live migration has only begun; a move at once has a new endpoint: the hosts that need it hear now.
  if (!vm.migration) await announceMoveAtOnce(tableName, currentRegion, vm);
  return { statusCode: 200, body: vm };
});
