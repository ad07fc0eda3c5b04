import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import type { P256PublicJwk } from '#events/api.ts';
import type { JwsSigner } from '#tokens/jws.ts';
import { issueHostCredential } from '#tokens/host-credentials.ts';
import { getHost, hostTokenRef } from '../compute/hosts.ts';
import { getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { listVmsOnHost, type StoredVm } from '../compute/vms.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type HostCredentialsView = z.infer<typeof responses.HostCredentials>;

/**
 * One credential per VM on this host with a service account attached, naming that VM alone and
 * bound to the key the host agent will mint with. A VM's tokens carry their credential (it goes
 * out with the VM's requests), so a credential naming several VMs would tell every origin one VM
 * calls the ids of its neighbours. A VM that left the host, or whose account was detached, gets
 * none; the agent then stops minting for it, and what the host still holds expires within
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
  const hostRef = await hostTokenRef(table, await getHost(table, hostId));
  const listed = (await listVmsOnHost(table, hostId)).filter((vm) => vm.serviceAccountId);
  const current = await Promise.all(listed.map((vm) => getItem<StoredVm>(table, keys.vm(vm.vmId))));
  const withAccount = current.filter((vm): vm is StoredVm & { serviceAccountId: string } => vm?.hostId === hostId && Boolean(vm.serviceAccountId));
  const credentials = await Promise.all(
    withAccount.map(async ({ serviceAccountId, tenantId, vmId }) => {
      const { credential, claims } = await issueHostCredential(signer, {
        serviceAccountId,
        tenantId,
        hostRef,
        vmIds: [vmId],
        hostPublicKey,
        lifetimeSeconds: options.lifetimeSeconds,
      });
      return { serviceAccountId, vmIds: claims.vms, credential, expiresAt: new Date(claims.exp * 1000).toISOString() };
    }),
  );
  return { hostId, credentials };
}
