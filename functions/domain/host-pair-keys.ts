import { getHost } from './hosts.ts';
import { listVmsOnHost } from './vms.ts';

export interface HostPairKeysView {
  hostId: string;
  /** Ciphertexts only: the agent decrypts each with KMS under the VM's encryption context. */
  pairKeys: { vmId: string; ciphertext: string }[];
}

/** The encrypted pair secrets of the VMs on a host, so its agent can check tokens for connections to them. */
export async function pairKeysOfHost(table: string, hostId: string): Promise<HostPairKeysView> {
  await getHost(table, hostId);
  const vms = await listVmsOnHost(table, hostId);
  return {
    hostId,
    pairKeys: vms.filter((vm) => vm.pairKeyCiphertext).map((vm) => ({ vmId: vm.vmId, ciphertext: vm.pairKeyCiphertext! })),
  };
}
