import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';
import { retagQueuesOfJobs } from '../../shuffle/shuffle-jobs.ts';
import { retagShuffleQueue } from '../../platform/shuffle-queues.ts';
import { reportMigration } from '../live-migration.ts';
import { getVmFor } from '../vms.ts';
import { currentRegion } from '../../platform/region.ts';
import { sendToHostQueue } from '../../platform/host-queues.ts';
import { fanOutEndpointNow } from '../../host-sync/fast-path.ts';

export const handler = apiHandler(operations.reportMigration, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  const answer = await reportMigration(tableName, path.hostId, path.vmId, body, newPairKeyCiphertext);
  if (body.event === 'resumed') {
    // The cut-over: the queues of the shuffle jobs the VM works for admit its new host, then the
    // VM's new endpoint goes to the hosts that need it (the destination's fast path). In that
    // order: the new host consumes those queues as soon as it hears the VM runs there.
    const vm = await getVmFor(tableName, undefined, path.vmId);
    await retagQueuesOfJobs(tableName, vm.shuffleJobIds ?? [], retagShuffleQueue);
    if (vm.hostId === path.hostId) {
      const entry = { ip: vm.ip, version: vm.endpointVersion, state: 'active' as const, vmId: vm.vmId, hostId: vm.hostId, endpoint: vm.endpointAddress };
      await fanOutEndpointNow(tableName, currentRegion, vm.networkId, entry, sendToHostQueue);
    }
  }
  return { statusCode: 200, body: answer };
});
