import type { HostVmConfigs } from '#events/vm-config.ts';
import type { StoredVm } from '../compute/vms.ts';
import { allowedSourceNetworks } from '../network/allowed-sources.ts';

/**
 * The encrypted pair secrets of VMs a host runs, their revoked pairs and the networks allowed to
 * open pairs to them, so its agent can check tokens for connections to them. Only VMs the host
 * runs: a host is handed no other VM's ciphertext (its KMS grant would unwrap any).
 */
export async function pairKeysOf(table: string, vmsOnHost: readonly StoredVm[]): Promise<HostVmConfigs['pairKeys']> {
  const vms = vmsOnHost.filter((vm) => vm.pairKeyCiphertext);
  // One query per network the host's VMs are in: a host re-checks the pairs it admitted against them.
  const networks = [...new Set(vms.map((vm) => vm.networkId))];
  const allowed = new Map(await Promise.all(networks.map(async (networkId) => [networkId, await allowedSourceNetworks(table, networkId)] as const)));
  return vms.map((vm) => ({
    vmId: vm.vmId,
    ciphertext: vm.pairKeyCiphertext!,
    ...(vm.pairRevocations && Object.keys(vm.pairRevocations).length > 0 ? { pairRevocations: vm.pairRevocations } : {}),
    allowedSourceNetworks: allowed.get(vm.networkId) ?? [],
  }));
}
