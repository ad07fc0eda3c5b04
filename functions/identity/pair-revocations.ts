import type { z } from 'zod';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type * as responses from '#events/responses.ts';
import type { Principal } from '#events/tokens.ts';
import { isRevoked, MAX_PAIR_REVOCATIONS, type PairRevocations, withLifted, withRevoked } from '#tokens/pair-revocations.ts';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import { assertHomeRegion } from '../core/regions.ts';
import { backoff } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { getVmFor, type StoredVm } from '../compute/vms.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type PairRevocationView = z.infer<typeof responses.PairRevocation>;

/** The tenant a pair-revocation route acts for: a tenant for its own VMs; an operator (undefined) for any. */
const tenantScope = (caller: Principal): string | undefined => (caller.kind === 'operator' ? undefined : caller.id);

/**
 * The destination VM (its tenant's, or any for an operator) and a source VM of the same tenant:
 * another tenant's VM is as unknown as one that does not exist.
 */
async function pairOf(table: string, caller: Principal, destinationVmId: string, sourceVmId: string): Promise<StoredVm> {
  const destination = await getVmFor(table, tenantScope(caller), destinationVmId);
  await getVmFor(table, destination.tenantId, sourceVmId);
  return destination;
}

/**
 * Writes a VM's new revocations on condition that nobody changed them since they were read (their
 * revision), reading again and retrying when somebody did.
 */
async function changeRevocations(
  table: string,
  region: string,
  caller: Principal,
  destinationVmId: string,
  sourceVmId: string,
  change: (current: PairRevocations | undefined, now: number) => PairRevocations,
): Promise<PairRevocations> {
  for (let attempt = 0; ; attempt++) {
    const vm = assertHomeRegion(await pairOf(table, caller, destinationVmId, sourceVmId), region, `vm ${destinationVmId}`);
    const now = Date.now();
    const next = change(vm.pairRevocations, now);
    const revision = vm.pairRevocationsRevision ?? 0;
    try {
      await dynamodb.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.vm(destinationVmId),
          UpdateExpression: 'SET pairRevocations = :next, pairRevocationsRevision = :revision, updatedAt = :now',
          ConditionExpression: `tenantId = :tenant AND ${revision === 0 ? 'attribute_not_exists(pairRevocationsRevision)' : 'pairRevocationsRevision = :seen'}`,
          ExpressionAttributeValues: {
            ':next': next,
            ':revision': revision + 1,
            ...(revision === 0 ? {} : { ':seen': revision }),
            ':tenant': vm.tenantId,
            ':now': new Date(now).toISOString(),
          },
        }),
      );
      return next;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException) || attempt >= 4) throw error;
      await backoff(attempt);
    }
  }
}

/**
 * Revokes the network pair `sourceVmId → destinationVmId`: no token is minted for it from now on,
 * and the destination's host, told through the metadata stream as for a credential change,
 * refuses the pair's tokens already minted. Revoking twice is revoking once (the first time kept).
 */
export async function revokePair(table: string, region: string, caller: Principal, destinationVmId: string, sourceVmId: string): Promise<PairRevocationView> {
  const revocations = await changeRevocations(table, region, caller, destinationVmId, sourceVmId, (current, now) => {
    const next = withRevoked(current, sourceVmId, now);
    if (!next) throw new ConflictError(`vm ${destinationVmId} has ${MAX_PAIR_REVOCATIONS} revoked pairs, the most it may hold: lift one first`);
    return next;
  });
  return { sourceVmId, destinationVmId, revokedAt: new Date(revocations[sourceVmId]!.revokedAt).toISOString() };
}

/** Lifts a revocation: tokens may be minted for the pair again; those issued before the revocation stay refused until they expire. */
export async function liftPairRevocation(table: string, region: string, caller: Principal, destinationVmId: string, sourceVmId: string): Promise<void> {
  await changeRevocations(table, region, caller, destinationVmId, sourceVmId, (current, now) => {
    const next = withLifted(current, sourceVmId, now);
    if (!next) throw new NotFoundError('pair revocation', `${sourceVmId} -> ${destinationVmId}`);
    return next;
  });
}

export async function listPairRevocations(table: string, caller: Principal, destinationVmId: string): Promise<{ pairRevocations: PairRevocationView[] }> {
  const vm = await getVmFor(table, tenantScope(caller), destinationVmId);
  return {
    pairRevocations: Object.entries(vm.pairRevocations ?? {})
      .filter(([, revocation]) => isRevoked(revocation))
      .map(([sourceVmId, revocation]) => ({ sourceVmId, destinationVmId, revokedAt: new Date(revocation.revokedAt).toISOString() }))
      .sort((a, b) => a.revokedAt.localeCompare(b.revokedAt) || a.sourceVmId.localeCompare(b.sourceVmId)),
  };
}
