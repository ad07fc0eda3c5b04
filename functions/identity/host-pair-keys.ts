import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { getHost } from '../compute/hosts.ts';
import { listVmsOnHost } from '../compute/vms.ts';
import { allowedSourceNetworks } from '../network/allowed-sources.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type HostPairKeysView = z.infer<typeof responses.HostPairKeys>;

/** The encrypted pair secrets of the VMs on a host, their revoked pairs and the networks allowed to open pairs to them, so its agent can check tokens for connections to them. */
export async function pairKeysOfHost(table: string, hostId: string): Promise<HostPairKeysView> {
  await getHost(table, hostId);
  const vms = (await listVmsOnHost(table, hostId)).filter((vm) => vm.pairKeyCiphertext);
  // One query per network the host's VMs are in: a host re-checks the pairs it admitted against them.
  const networks = [...new Set(vms.map((vm) => vm.networkId))];
  const allowed = new Map(await Promise.all(networks.map(async (networkId) => [networkId, await allowedSourceNetworks(table, networkId)] as const)));
  return {
    hostId,
    pairKeys: vms.map((vm) => ({
      vmId: vm.vmId,
      ciphertext: vm.pairKeyCiphertext!,
      ...(vm.pairRevocations && Object.keys(vm.pairRevocations).length > 0 ? { pairRevocations: vm.pairRevocations } : {}),
      allowedSourceNetworks: allowed.get(vm.networkId) ?? [],
    })),
  };
}
