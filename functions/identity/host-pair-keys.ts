import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { getHost } from '../compute/hosts.ts';
import { listVmsOnHost } from '../compute/vms.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type HostPairKeysView = z.infer<typeof responses.HostPairKeys>;

/** The encrypted pair secrets of the VMs on a host, and their revoked pairs, so its agent can check tokens for connections to them. */
export async function pairKeysOfHost(table: string, hostId: string): Promise<HostPairKeysView> {
  await getHost(table, hostId);
  const vms = await listVmsOnHost(table, hostId);
  return {
    hostId,
    pairKeys: vms
      .filter((vm) => vm.pairKeyCiphertext)
      .map((vm) => ({
        vmId: vm.vmId,
        ciphertext: vm.pairKeyCiphertext!,
        ...(vm.pairRevocations && Object.keys(vm.pairRevocations).length > 0 ? { pairRevocations: vm.pairRevocations } : {}),
      })),
  };
}
