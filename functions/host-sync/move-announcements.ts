import { endpointEntryOf, fanOutEndpointNow } from './fast-path.ts';
import { sendToHostQueue } from '../platform/host-queues.ts';
import { retagShuffleQueue } from '../platform/shuffle-queues.ts';
import { retagQueuesOfWorker } from '../shuffle/shuffle-jobs.ts';
import type { VmView } from '../compute/vms.ts';

/**
 * After a VM moved at once (a move that is not live, a restart elsewhere, a drain): the hosts that
 * need its new endpoint hear now (the fast path; the table's stream is the backstop), and the
 * queues of the shuffle jobs it works for admit its new host.
 */
export async function announceMoveAtOnce(table: string, region: string, vm: VmView): Promise<void> {
  // Independent: side by side.
  await Promise.all([
    fanOutEndpointNow(table, region, vm.networkId, endpointEntryOf(vm), sendToHostQueue),
    retagQueuesOfWorker(table, vm.vmId, retagShuffleQueue),
  ]);
}
