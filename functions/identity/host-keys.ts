import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { HOST_KEYS_ATTESTATION_TYPE } from '#events/tokens.ts';
import type { HostKeysItem } from '#events/records.ts';
import type { JwsSigner } from '#tokens/jws.ts';
import { dynamodb } from '../platform/clients.ts';
import { ForbiddenError, NotFoundError, ValidationError } from '../core/errors.ts';
import { knownHostsLine, parseSshPublicKey } from './ssh-public-keys.ts';
import { cancellationCodes, getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { getVm, type StoredVm } from '../compute/vms.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type HostKeysView = z.infer<typeof responses.HostKeys>;

/**
 * Records a VM's SSH host keys as its host forwarded them, with a KMS signature over VM, keys,
 * publishing host and time. Only the host the VM runs on may publish, checked in the same
 * transaction as the write, so a VM that migrates meanwhile cannot get keys from its old host.
 */
export async function publishHostKeys(table: string, signer: JwsSigner, hostId: string, vmId: string, lines: readonly string[]): Promise<HostKeysView> {
  const parsed = lines.map((line, index) => parseSshPublicKey(line, `body.keys.${index}`));
  const types = parsed.map((key) => key.keyType);
  const repeated = types.find((type, index) => types.indexOf(type) !== index);
  if (repeated) throw new ValidationError(`body.keys: more than one ${repeated} key`);

  // Both read at once: a guest publishes while it boots, and each round trip is on its boot's clock.
  const [vm, current] = await Promise.all([getItem<StoredVm>(table, keys.vm(vmId)), getItem<HostKeysItem>(table, keys.hostKeys(vmId))]);
  if (!vm) throw new NotFoundError('vm', vmId);
  if (vm.hostId !== hostId) throw new ForbiddenError(`vm ${vmId} does not run on host ${hostId}`);
  // The set this host already published, unchanged: its attestation stands; no new KMS signature.
  if (current && current.publishedBy === hostId && sameKeySet(current.keys, parsed)) return toView(vm, current);

  const publishedAt = new Date();
  const attestation = await signer.sign(HOST_KEYS_ATTESTATION_TYPE, {
    vmId,
    tenantId: vm.tenantId,
    keys: parsed.map(({ keyType, fingerprint }) => ({ keyType, fingerprint })),
    publishedBy: hostId,
    iat: Math.floor(publishedAt.getTime() / 1000),
  });
  const item: HostKeysItem & Record<string, unknown> = {
    ...keys.hostKeys(vmId),
    kind: 'host-keys',
    vmId,
    tenantId: vm.tenantId,
    keys: parsed,
    publishedBy: hostId,
    publishedAt: publishedAt.toISOString(),
    attestation,
  };
  try {
    await dynamodb.send(
      new TransactWriteCommand({
        TransactItems: [
          { ConditionCheck: { TableName: table, Key: keys.vm(vmId), ConditionExpression: 'hostId = :host', ExpressionAttributeValues: { ':host': hostId } } },
          { Put: { TableName: table, Item: item } },
        ],
      }),
    );
  } catch (error) {
    if (cancellationCodes(error)?.[0] === 'ConditionalCheckFailed') throw new ForbiddenError(`vm ${vmId} does not run on host ${hostId}`);
    throw error;
  }
  return toView(vm, item);
}

/** The same keys, whatever their order. */
function sameKeySet(a: readonly { keyType: string; base64: string }[], b: readonly { keyType: string; base64: string }[]): boolean {
  const canonical = (set: readonly { keyType: string; base64: string }[]) =>
    set
      .map(({ keyType, base64 }) => `${keyType} ${base64}`)
      .sort()
      .join('\n');
  return a.length === b.length && canonical(a) === canonical(b);
}

/** A tenant's view of its VM's host keys: fingerprints to compare and known_hosts lines to trust. */
export async function getHostKeys(table: string, tenantId: string, vmId: string): Promise<HostKeysView> {
  const vm = await getVm(table, tenantId, vmId);
  return toView(vm, await getItem<HostKeysItem>(table, keys.hostKeys(vmId)));
}

function toView(vm: StoredVm, item: HostKeysItem | undefined): HostKeysView {
  return {
    vmId: vm.vmId,
    keys: (item?.keys ?? []).map((key) => ({
      keyType: key.keyType,
      publicKey: `${key.keyType} ${key.base64}`,
      fingerprint: key.fingerprint,
      knownHostsLine: knownHostsLine([vm.ip], key),
    })),
    publishedAt: item?.publishedAt,
    attestation: item?.attestation,
  };
}
