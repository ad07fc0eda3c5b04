import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import type { Principal } from '#events/tokens.ts';
import { issuePairToken } from '#tokens/pair-tokens.ts';
import { isRevoked } from '#tokens/pair-revocations.ts';
import { isAllowed } from '../network/allowed-sources.ts';
import { ConflictError, ForbiddenError, NotFoundError } from '../core/errors.ts';
import { cidrsOverlap } from '../network/cidr.ts';
import { getNetwork } from '../network/networks.ts';
import { getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import type { StoredVm } from '../compute/vms.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type ConnectionView = z.infer<typeof responses.Connection>;

/**
 * Authorises a connection from one VM to another and returns the destination's tunnel endpoint
 * with a token only the destination's host can check: a MAC over the pair and that host's
 * address, keyed by the destination VM's secret, which never leaves KMS-encrypted storage except
 * to derive the token here and to verify it at the destination host.
 *
 * The caller is the source VM's tenant, or the host the source VM runs on. A revoked pair gets no
 * token (403).
 */
export async function requestConnection(
  table: string,
  caller: Principal,
  sourceVmId: string,
  destinationVmId: string,
  decryptPairKey: (vmId: string, ciphertext: string) => Promise<Buffer>,
): Promise<ConnectionView> {
  const source = await getItem<StoredVm>(table, keys.vm(sourceVmId));
  if (!source || (caller.kind === 'tenant' && source.tenantId !== caller.id)) throw new NotFoundError('vm', sourceVmId);
  if (caller.kind === 'host' && source.hostId !== caller.id) throw new ForbiddenError(`vm ${sourceVmId} does not run on host ${caller.id}`);
  const destination = await getItem<StoredVm>(table, keys.vm(destinationVmId));
  // Across tenants there is nothing to authorise, and nothing to reveal.
  if (!destination || destination.tenantId !== source.tenantId) throw new NotFoundError('vm', destinationVmId);
  if (!(await isAllowed(table, destination.networkId, source.networkId))) {
    throw new ForbiddenError(
      `vm ${sourceVmId} may not connect to vm ${destinationVmId}: network ${source.networkId} is not ${destination.networkId} and is not an allowed source of it`,
    );
  }
  if (source.networkId !== destination.networkId) {
    // Between networks a pair is routed by address: the two ranges must not share one.
    const [from, to] = await Promise.all([getNetwork(table, source.tenantId, source.networkId), getNetwork(table, source.tenantId, destination.networkId)]);
    if (cidrsOverlap(from.cidr, to.cidr))
      throw new ConflictError(
        `network ${source.networkId} (${from.cidr}) and network ${destination.networkId} (${to.cidr}) overlap: a pair between them cannot be routed`,
      );
  }
  if (isRevoked(destination.pairRevocations?.[sourceVmId])) {
    throw new ForbiddenError(`pair ${sourceVmId} -> ${destinationVmId} is revoked (DELETE /vms/${destinationVmId}/pair-revocations/${sourceVmId} lifts it)`);
  }
  if (!destination.pairKeyCiphertext) throw new Error(`vm ${destinationVmId} has no pair key`);
  const secret = await decryptPairKey(destinationVmId, destination.pairKeyCiphertext);
  try {
    const { token, claims } = issuePairToken(secret, {
      src: sourceVmId,
      srcIp: source.ip,
      dst: destinationVmId,
      dstIp: destination.ip,
      dstHost: destination.endpointAddress,
      srcHost: source.endpointAddress,
      srcNet: source.networkId,
    });
    return {
      sourceVmId,
      destinationVmId,
      destinationIp: destination.ip,
      destinationHostAddress: destination.endpointAddress,
      token,
      expiresAt: new Date(claims.exp * 1000).toISOString(),
    };
  } finally {
    secret.fill(0);
  }
}
