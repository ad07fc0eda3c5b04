import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import type { P256PublicJwk } from '#events/api.ts';
import type { JwsSigner } from '#tokens/jws.ts';
import { issueHostCredential } from '#tokens/host-credentials.ts';
import { getHost } from './hosts.ts';
import { getItem } from './store.ts';
import { keys } from './table-keys.ts';
import { listVmsOnHost, type StoredVm } from './vms.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type HostCredentialsView = z.infer<typeof responses.HostCredentials>;

/**
 * One credential per service account attached to a VM on this host, naming those VMs and bound
 * to the key the host agent will mint with. A VM that left the host (migrated away, deleted), or
 * whose account was detached, is simply not named: the host obtains nothing more for it, the
 * agent stops minting for it, and what the host still holds expires within
 * HOST_CREDENTIAL_SECONDS (or the shorter `lifetimeSeconds` it asked for). The index of VMs by
 * host can trail a migration, so each VM is read again, consistently, before it is named.
 */
export async function issueCredentialsForHost(
  table: string,
  signer: JwsSigner,
  hostId: string,
  hostPublicKey: P256PublicJwk,
  options: { lifetimeSeconds?: number | undefined } = {},
): Promise<HostCredentialsView> {
  await getHost(table, hostId);
  const listed = (await listVmsOnHost(table, hostId)).filter((vm) => vm.serviceAccountId);
  const current = await Promise.all(listed.map((vm) => getItem<StoredVm>(table, keys.vm(vm.vmId))));
  const byAccount = new Map<string, StoredVm[]>();
  for (const vm of current) {
    if (!vm || vm.hostId !== hostId || !vm.serviceAccountId) continue;
    byAccount.set(vm.serviceAccountId, [...(byAccount.get(vm.serviceAccountId) ?? []), vm]);
  }
  const credentials = await Promise.all(
    [...byAccount].map(async ([serviceAccountId, accountVms]) => {
      const vmIds = accountVms.map((vm) => vm.vmId);
      const { credential, claims } = await issueHostCredential(signer, { serviceAccountId, tenantId: accountVms[0]!.tenantId, hostId, vmIds, hostPublicKey, lifetimeSeconds: options.lifetimeSeconds });
      return { serviceAccountId, vmIds: claims.vms, credential, expiresAt: new Date(claims.exp * 1000).toISOString() };
    }),
  );
  return { hostId, credentials };
}
