import type { EndpointEntry } from '#events/endpoints.ts';
import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { CreateVmRequest, ListVmsQuery } from '#events/api.ts';
import type { SlotItem, VmItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { type AddressChoice, afterAddressTaken, chooseAddress, freeListEntry, giveBack, takeAddress, versionFor } from '../network/addresses.ts';
import { ClientError, ConflictError, InUseError, NotFoundError } from '../core/errors.ts';
import { assertRunsVms, getHost } from './hosts.ts';
import { assertPlaceable, placeableHosts } from './host-liveness.ts';
import { placeHost } from './placement-index.ts';
import type { HostAcceptance } from './placement.ts';
import { getNetwork } from '../network/networks.ts';
import { newId } from '../core/ids.ts';
import { queryPage } from '../core/pagination.ts';
import { backoff, cancellationCodes, getItem, queryAll, type TransactItem } from '../core/store.ts';
import { indexes, indexKeys, keys } from '../core/table-keys.ts';
import { nodeAttributes, projectGuard, projectGuardError } from '../tenancy/projects.ts';
import { getTenantItem } from '../core/access.ts';
import { imageForLaunch, waitForCopy } from '../images/image-copies.ts';
import { assertHomeRegion, inRegion } from '../core/regions.ts';
import { assertDisksHaveSlots, liveMigrationStart, migratingRefusal } from './live-migration-start.ts';
import { fullHostError, hostCountDelta, memberDelta, refusedHostError } from './vm-counts.ts';
import { createOnce, throwIfClaimLost } from '../core/client-tokens.ts';
import { quotaCharge, quotaRelease } from '../tenancy/quotas.ts';
import { DEFAULT_MACHINE_TYPE, type HostFailureRecovery } from '#events/vm-lifecycle.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type VmView = z.infer<typeof responses.Vm>;

export type StoredVm = VmItem & { endpointAddress: string; endpointVersion: number; diskIds?: Set<string> };

export const toVmView = (vm: StoredVm): VmView => ({
  vmId: vm.vmId,
  region: vm.region,
  tenantId: vm.tenantId,
  projectId: vm.projectId,
  name: vm.name,
  networkId: vm.networkId,
  ip: vm.ip,
  hostId: vm.hostId,
  // Its host says running; the control plane knows it is moving.
  state: vm.migration && vm.state === 'running' ? 'migrating' : vm.state,
  stateReason: vm.stateReason,
  ...(vm.runtime ? { runtime: vm.runtime } : {}),
  powerState: vm.powerState ?? 'running',
  machineType: vm.machineType ?? DEFAULT_MACHINE_TYPE,
  imageId: vm.imageId,
  serviceAccountId: vm.serviceAccountId,
  egress: vm.egress,
  attributes: vm.attributes,
  diskIds: [...(vm.diskIds ?? [])].sort(),
  endpoint: { address: vm.endpointAddress, version: vm.endpointVersion },
  ...(vm.migration
    ? {
        migration: {
          migrationId: vm.migration.migrationId,
          phase: vm.migration.phase,
          sourceHostId: vm.migration.sourceHostId,
          targetHostId: vm.migration.targetHostId,
          startedAt: vm.migration.startedAt,
          updatedAt: vm.migration.updatedAt,
        },
      }
    : {}),
  ...(vm.lastMigration ? { lastMigration: vm.lastMigration } : {}),
  onHostFailure: vm.onHostFailure ?? 'wait',
  ...(vm.lastRecovery ? { lastRecovery: vm.lastRecovery } : {}),
  createdAt: vm.createdAt,
  updatedAt: vm.updatedAt,
});

/** Past this many lost races the caller is told to retry rather than held longer. */
export const MAX_ATTEMPTS = 25;

export class TooBusyError extends ClientError {
  constructor(what: string) {
    super(503, `${what} is contended by concurrent requests; retry`);
  }
}

/** Where a VM is created: this control plane's region, and its image bucket (the target of image copies). */
export interface Placement {
  region: string;
  imagesBucket: string;
  /** Hosts' heartbeats: placement takes only healthy hosts. */
  livenessTable: string;
}

/** What placement's sampled candidates must pass besides its own rules: healthy hosts only (heard from lately, not cordoned), one read for all of them. */
const healthy = (livenessTable: string): HostAcceptance => ({ acceptAll: (hosts) => placeableHosts(livenessTable, hosts) });

/**
 * Creates a VM: a free address of its network (addresses.ts: the next fresh one, else one from
 * its free list), a host with room (placement.ts: from a few shards of the placement index), and
 * the address slot's tunnel endpoint, all in one transaction. Neither read grows with the network
 * or the fleet. A lost race for the address or the host's last place is retried; an address is
 * never given twice because the slot write is conditional, and one reserved but not used is given
 * back.
 * Networks and hosts are regional: both must be in this control plane's region. A VM whose image
 * lives in another region is placed at once but stays `pending` until the image's copy here is
 * verified (see image-copies.ts).
 */
export async function createVm(
  table: string,
  tenantId: string,
  request: CreateVmRequest,
  placement: Placement,
  newPairKeyCiphertext: (vmId: string) => Promise<string>,
): Promise<VmView> {
  return createOnce(
    { table, tenantId, operation: 'createVm', request },
    async (vmId) => toVmView(await getVm(table, tenantId, vmId)),
    (claim) => placeVm(table, tenantId, request, placement, newPairKeyCiphertext, claim),
  );
}

async function placeVm(
  table: string,
  tenantId: string,
  request: CreateVmRequest,
  placement: Placement,
  newPairKeyCiphertext: (vmId: string) => Promise<string>,
  claim: (vmId: string) => TransactItem[],
): Promise<VmView> {
  const { region } = placement;
  const network = await getNetwork(table, tenantId, request.networkId);
  if (!inRegion(network, region))
    throw new ConflictError(`networkId: network ${network.networkId} is in ${network.region}; create its VMs through the ${network.region} API`);
  const pinned = request.hostId ? await getHost(table, request.hostId) : undefined;
  if (pinned && !inRegion(pinned, region)) throw new ConflictError(`hostId: host ${pinned.hostId} is in ${pinned.region}, not ${region}`);
  if (pinned) assertRunsVms(pinned, 'hostId');
  if (pinned) await assertPlaceable(placement.livenessTable, pinned, 'hostId');
  const launchImage = () => (request.imageId ? imageForLaunch(table, tenantId, request.imageId, region, network.projectId, placement.imagesBucket) : undefined);
  const spread = await hostsOfVms(table, tenantId, request.spreadFrom);
  if (pinned && spread.has(pinned.hostId)) throw new ConflictError(`hostId: host ${pinned.hostId} runs ${spread.get(pinned.hostId)}, named in spreadFrom`);
  let launch = await launchImage();
  const vmId = newId('vm');
  // Made meanwhile: the reads below do not depend on it.
  const pairKeyCiphertextMade = newPairKeyCiphertext(vmId);
  pairKeyCiphertextMade.catch(() => {});
  const fullHosts = new Set<string>();
  /** The address this create will take, kept across attempts until it is lost to another create. */
  let address: AddressChoice | undefined;
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // Address, host and quota are independent reads: side by side, one round trip instead of three
      // (a reserved address is kept, and given back below, whatever else failed).
      const [addressRead, hostRead, quotaRead] = await Promise.allSettled([
        address ? Promise.resolve(address) : chooseAddress(table, network),
        pinned
          ? getHost(table, pinned.hostId)
          : placeHost(
              table,
              { region, exclude: new Set([...fullHosts, ...spread.keys()]) },
              healthy(placement.livenessTable),
              network.placement === 'pack' ? network.networkId : undefined,
            ),
        // The tenant's VM quota, taken in the same transaction (read afresh each attempt).
        quotaCharge(table, tenantId, region, { vms: 1 }),
      ]);
      if (addressRead.status === 'rejected') throw addressRead.reason;
      address = addressRead.value;
      const chosen = address;
      if (!chosen) throw new ConflictError(`networkId: network ${network.networkId} (${network.cidr}) has no free address`);
      const { ip } = chosen;
      if (hostRead.status === 'rejected') throw hostRead.reason;
      const host = hostRead.value;
      if (pinned && host) assertRunsVms(host, 'hostId');
      if (pinned && host && host.vmCount >= host.capacity) throw fullHostError(host, 'hostId');
      if (!host || host.vmCount >= host.capacity) {
        throw new ConflictError(
          spread.size > 0 ? 'spreadFrom: no host apart from those VMs has capacity for another VM' : 'no host has capacity for another VM',
        );
      }

      const now = new Date().toISOString();
      const version = versionFor(chosen);
      const vm: StoredVm & Record<string, unknown> = {
        ...keys.vm(vmId),
        ...nodeAttributes(network.projectId, 'vm', vmId),
        kind: 'vm',
        vmId,
        tenantId,
        name: request.name,
        networkId: network.networkId,
        ...(network.placement === 'pack' ? { networkPlacement: 'pack' } : {}),
        ip,
        hostId: host.hostId,
        region,
        // Its host boots it and reports from then on; until then (and while its image is copied here) it is provisioning.
        state: 'provisioning',
        ...(launch && !launch.ready
          ? { stateReason: `waiting for image ${launch.image.imageId} to be copied from ${launch.image.region} to ${region}`, waitingForImage: true }
          : {}),
        // What will run it, as its host registered (its reports say from then on).
        ...(host.vmRuntime ? { runtime: host.vmRuntime } : {}),
        powerState: 'running',
        bootGeneration: 0,
        machineType: request.machineType ?? DEFAULT_MACHINE_TYPE,
        ...(request.imageId ? { imageId: request.imageId } : {}),
        ...(request.attributes ? { attributes: request.attributes } : {}),
        ...(request.onHostFailure === 'restart' ? { onHostFailure: 'restart' } : {}),
        endpointAddress: host.address,
        endpointVersion: version,
        pairKeyCiphertext: await pairKeyCiphertextMade,
        createdAt: now,
        updatedAt: now,
        gsi1pk: indexKeys.vmsOfTenant(tenantId),
        gsi1sk: vmId,
        gsi2pk: indexKeys.vmsOfNetwork(network.networkId),
        gsi2sk: vmId,
        gsi3pk: indexKeys.vmsOnHost(host.hostId),
        gsi3sk: vmId,
      };
      const slot: SlotItem & Record<string, unknown> = {
        ...keys.slot(network.networkId, ip),
        kind: 'slot',
        networkId: network.networkId,
        ip,
        version,
        state: 'active',
        vmId,
        hostId: host.hostId,
        endpoint: host.address,
      };
      const take = takeAddress(table, network.networkId, chosen, slot);
      const items: TransactItem[] = [
        take.slot,
        hostCountDelta(table, host.hostId, 1),
        memberDelta(table, network.networkId, host.hostId, 1),
        { Put: { TableName: table, Item: vm, ConditionExpression: 'attribute_not_exists(pk)' } },
        { ConditionCheck: { TableName: table, Key: keys.network(network.networkId), ConditionExpression: 'attribute_exists(pk)' } },
        projectGuard(table, tenantId, network.projectId).item,
        ...(launch && !launch.ready ? [waitForCopy(table, launch.copy, vmId)] : []),
      ];
      const releaseAt = take.release ? items.push(take.release) - 1 : undefined;
      if (quotaRead.status === 'rejected') throw quotaRead.reason;
      const quota = quotaRead.value;
      const quotaAt = items.push(...quota.items) - quota.items.length;
      const claimed = claim(vmId);
      try {
        await dynamodb.send(new TransactWriteCommand({ TransactItems: [...items, ...claimed] }));
        address = undefined;
        return toVmView(vm);
      } catch (error) {
        const codes = cancellationCodes(error);
        if (!codes) throw error;
        // The address went to another create (or, fresh, was allocated before the cursor): another one, or that slot if released.
        const slotTaken = codes[0] === 'ConditionalCheckFailed';
        if (slotTaken || (releaseAt !== undefined && codes[releaseAt] === 'ConditionalCheckFailed')) {
          address = undefined;
          address = await afterAddressTaken(table, network.networkId, chosen, slotTaken);
        }
        throwIfClaimLost(codes, claimed);
        await quota.refusal(codes, quotaAt);
        if (codes[1] === 'ConditionalCheckFailed') {
          if (pinned) throw await refusedHostError(table, pinned.hostId, 'hostId');
          fullHosts.add(host.hostId);
        }
        if (codes[4] === 'ConditionalCheckFailed') throw new NotFoundError('network', network.networkId);
        if (codes[5] === 'ConditionalCheckFailed') throw await projectGuardError(table, tenantId, network.projectId);
        // The copy ended meanwhile: launch from what it is now.
        if (launch && !launch.ready && codes[6] === 'ConditionalCheckFailed') launch = await launchImage();
        await backoff(attempt);
      }
    }
    throw new TooBusyError(`network ${network.networkId}`);
  } finally {
    // A fresh address reserved and not used: back to the network.
    if (address?.kind === 'fresh') await giveBack(table, network.networkId, address);
  }
}

/**
 * Applies an update to a tenant's VM item, on the condition that it is still that tenant's: a VM
 * deleted or never the tenant's is a 404.
 */
export async function updateTenantVm(
  table: string,
  tenantId: string,
  vmId: string,
  update: { expression: string; names?: Record<string, string>; values: Record<string, unknown> },
): Promise<void> {
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.vm(vmId),
        UpdateExpression: update.expression,
        ConditionExpression: 'tenantId = :tenant',
        ...(update.names ? { ExpressionAttributeNames: update.names } : {}),
        ExpressionAttributeValues: { ...update.values, ':tenant': tenantId },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('vm', vmId);
    throw error;
  }
}

/** A tenant's VM; another tenant's is as unknown as one that does not exist. */
export async function getVm(table: string, tenantId: string, vmId: string): Promise<StoredVm> {
  return getTenantItem<StoredVm>(table, keys.vm(vmId), tenantId, 'vm', vmId);
}

/**
 * Where a tenant's VMs run (anti-affinity: `spreadFrom`), host id → the VM there. Each VM must be
 * the tenant's (another tenant's is a 404, as everywhere).
 */
async function hostsOfVms(table: string, tenantId: string, vmIds: readonly string[] | undefined): Promise<Map<string, string>> {
  const hosts = new Map<string, string>();
  for (const vm of await Promise.all([...new Set(vmIds ?? [])].map((vmId) => getVm(table, tenantId, vmId)))) hosts.set(vm.hostId, `vm ${vm.vmId}`);
  return hosts;
}

/** Any tenant's VM, for operators. */
async function getAnyVm(table: string, vmId: string): Promise<StoredVm> {
  const vm = await getItem<StoredVm>(table, keys.vm(vmId));
  if (!vm) throw new NotFoundError('vm', vmId);
  return vm;
}

/** A tenant's VM, or (tenantId undefined: an operator) any tenant's. */
export const getVmFor = (table: string, tenantId: string | undefined, vmId: string): Promise<StoredVm> =>
  tenantId === undefined ? getAnyVm(table, vmId) : getVm(table, tenantId, vmId);

/** The VMs on a host. The index can trail a migration for a moment; each item says where its VM runs, so those that left are dropped. */
export async function listVmsOnHost(table: string, hostId: string): Promise<StoredVm[]> {
  const vms = await queryAll<StoredVm>({
    TableName: table,
    IndexName: indexes.gsi3,
    KeyConditionExpression: 'gsi3pk = :pk',
    ExpressionAttributeValues: { ':pk': indexKeys.vmsOnHost(hostId) },
  });
  return vms.filter((vm) => vm.hostId === hostId);
}

export async function listVms(table: string, tenantId: string, query: ListVmsQuery) {
  if (query.networkId) await getNetwork(table, tenantId, query.networkId);
  const index = query.networkId
    ? { name: indexes.gsi2, partitionKey: 'gsi2pk', value: indexKeys.vmsOfNetwork(query.networkId) }
    : { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.vmsOfTenant(tenantId) };
  const page = await queryPage<StoredVm>(table, index, query.limit, query.nextToken);
  return { vms: page.items.map(toVmView), nextToken: page.nextToken };
}

/** Operators: one page of the VMs on a host, every tenant's (what the host's index holds, less those that left it). */
export async function listVmsOnHostPage(table: string, hostId: string, query: ListVmsQuery) {
  await getHost(table, hostId);
  const page = await queryPage<StoredVm>(
    table,
    { name: indexes.gsi3, partitionKey: 'gsi3pk', value: indexKeys.vmsOnHost(hostId) },
    query.limit,
    query.nextToken,
  );
  return { vms: page.items.filter((vm) => vm.hostId === hostId).map(toVmView), nextToken: page.nextToken };
}

/**
 * Moves a VM to another host. Its address stays; its slot's endpoint becomes the target host's
 * address under the next version, and both hosts' memberships move in the same transaction.
 * Placement picks the target (another host of the VM's region with room, away from `spreadFrom`'s
 * VMs) unless an operator named it. `tenantId` undefined: an operator, acting on any tenant's VM.
 */
export async function migrateVm(
  table: string,
  { region, livenessTable }: Pick<Placement, 'region' | 'livenessTable'>,
  tenantId: string | undefined,
  vmId: string,
  request: { targetHostId?: string | undefined; spreadFrom?: readonly string[] | undefined } = {},
  /** Rotates the VM's network-pair secret in the move: pair tokens made with the old one are refused at the new host. */
  newPairKeyCiphertext?: (vmId: string) => Promise<string>,
  /**
   * A restart elsewhere after the VM's host went down (host-recovery.ts): only while the VM is
   * still on that host, always at once (nothing of the guest can be copied), booted afresh there.
   */
  recovery?: { fromHostId: string; reason: string },
): Promise<VmView> {
  const named = request.targetHostId;
  const fullHosts = new Set<string>();
  let spread: Map<string, string> | undefined;
  let pairKeyCiphertext: string | undefined;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const vm = assertHomeRegion(await getVmFor(table, tenantId, vmId), region, `vm ${vmId}`);
    spread ??= await hostsOfVms(table, vm.tenantId, request.spreadFrom);
    if (named === vm.hostId) throw new ConflictError(`targetHostId: vm ${vmId} already runs on host ${named}`);
    if (recovery && vm.hostId !== recovery.fromHostId) throw new ConflictError(`vm ${vmId} no longer runs on host ${recovery.fromHostId}`);
    if (vm.migration) throw new ConflictError(migratingRefusal(vm.vmId, vm.migration));
    // A guest that runs moves live (its memory copied while it runs) between hosts that can; anything
    // else moves at once: a VM not running yet or any more, or a guest on a host that cannot (it
    // is booted again at its destination).
    const source = !recovery && vm.runtime === 'qemu' && vm.state === 'running' ? await getHost(table, vm.hostId) : undefined;
    const live = source?.liveMigration === true;
    // A move at once reads the VM's slot and makes its new pair secret: side by side with placement below.
    const slotRead = live ? undefined : getItem<SlotItem>(table, keys.slot(vm.networkId, vm.ip));
    const pairKeyMade = live || pairKeyCiphertext ? undefined : newPairKeyCiphertext?.(vmId);
    slotRead?.catch(() => {});
    pairKeyMade?.catch(() => {});
    // A disk's data is a file on its host (docs/disks.md): it follows a guest that moves live
    // (copied while the guest runs), nothing else.
    const diskIds = [...(vm.diskIds ?? [])].sort();
    if (diskIds.length > 0 && !live)
      throw new ConflictError(
        `vm ${vmId} has disks attached: ${diskIds.join(', ')}; their data is on host ${vm.hostId} and moves only with a running guest between hosts that migrate live: detach them first`,
      );
    if (diskIds.length > 0) await assertDisksHaveSlots(table, vmId, diskIds);
    if (named && spread.has(named)) throw new ConflictError(`targetHostId: host ${named} runs ${spread.get(named)}, named in spreadFrom`);
    const target = named
      ? await getHost(table, named)
      : await placeHost(
          table,
          { region: vm.region ?? region, exclude: new Set([vm.hostId, ...fullHosts, ...spread.keys()]), liveOnly: live },
          healthy(livenessTable),
          vm.networkPlacement === 'pack' ? vm.networkId : undefined,
        );
    if (!target) throw new ConflictError(`no other host${spread.size > 0 ? ' apart from the spreadFrom VMs' : ''} has capacity for vm ${vmId}`);
    const targetHostId = target.hostId;
    // Tunnels and addresses are regional: a VM moves between hosts of its own region only.
    if (vm.region !== undefined && target.region !== undefined && target.region !== vm.region) {
      throw new ConflictError(`targetHostId: host ${targetHostId} is in ${target.region}; vm ${vmId} runs in ${vm.region}`);
    }
    assertRunsVms(target, 'targetHostId');
    if (named) await assertPlaceable(livenessTable, target, 'targetHostId');
    if (target.vmCount >= target.capacity) throw fullHostError(target, 'targetHostId');
    if (live) {
      if (target.liveMigration !== true)
        throw new ConflictError(`targetHostId: host ${targetHostId} does not take guests live, so vm ${vmId}'s running guest cannot move there`);
      const now = new Date().toISOString();
      const { items, migration } = liveMigrationStart(table, vm, target, source!, now, diskIds);
      try {
        await dynamodb.send(new TransactWriteCommand({ TransactItems: items }));
        return toVmView({ ...vm, migration, updatedAt: now });
      } catch (error) {
        const codes = cancellationCodes(error);
        if (!codes) throw error;
        if (codes[1] === 'ConditionalCheckFailed') {
          if (named) throw await refusedHostError(table, targetHostId, 'targetHostId');
          fullHosts.add(targetHostId);
        }
        await backoff(attempt);
        continue;
      }
    }
    const slot = await slotRead;
    if (!slot || slot.vmId !== vmId) throw new Error(`slot ${vm.networkId}/${vm.ip} does not belong to vm ${vmId}`);

    const version = slot.version + 1;
    const updatedAt = new Date().toISOString();
    pairKeyCiphertext ??= await pairKeyMade;
    const recovered: HostFailureRecovery | undefined = recovery && {
      fromHostId: recovery.fromHostId,
      toHostId: targetHostId,
      at: updatedAt,
      reason: recovery.reason,
    };
    const restartedBecause = recovered && `restarted here: its host ${recovered.fromHostId} went down (${recovered.reason})`;
    const removed = [...(target.vmRuntime ? [] : ['runtime']), ...(recovered ? ['stateObservedAt'] : [])];
    const items: TransactItem[] = [
      {
        Update: {
          TableName: table,
          Key: keys.vm(vmId),
          // What runs it is now the target's (its reports say from then on); unknown if the target never said.
          // Restarted elsewhere: booted afresh there, and the dead host's last report no longer counts.
          UpdateExpression: `SET hostId = :to, endpointAddress = :address, endpointVersion = :version, updatedAt = :now, gsi3pk = :onHost${pairKeyCiphertext ? ', pairKeyCiphertext = :pairKey' : ''}${target.vmRuntime ? ', runtime = :runtime' : ''}${recovered ? ', #state = :provisioning, stateReason = :why, lastRecovery = :recovered' : ''}${removed.length > 0 ? ` REMOVE ${removed.join(', ')}` : ''}`,
          ConditionExpression: 'hostId = :from AND attribute_not_exists(diskIds) AND attribute_not_exists(migration)',
          ...(recovered ? { ExpressionAttributeNames: { '#state': 'state' } } : {}),
          ExpressionAttributeValues: {
            ...(pairKeyCiphertext ? { ':pairKey': pairKeyCiphertext } : {}),
            ...(target.vmRuntime ? { ':runtime': target.vmRuntime } : {}),
            ...(recovered ? { ':provisioning': 'provisioning', ':why': restartedBecause, ':recovered': recovered } : {}),
            ':to': targetHostId,
            ':from': vm.hostId,
            ':address': target.address,
            ':version': version,
            ':now': updatedAt,
            ':onHost': indexKeys.vmsOnHost(targetHostId),
          },
        },
      },
      {
        Update: {
          TableName: table,
          Key: keys.slot(vm.networkId, vm.ip),
          UpdateExpression: 'SET hostId = :to, endpoint = :address, version = :version',
          ConditionExpression: 'version = :previous AND vmId = :vm',
          ExpressionAttributeValues: { ':to': targetHostId, ':address': target.address, ':version': version, ':previous': slot.version, ':vm': vmId },
        },
      },
      hostCountDelta(table, vm.hostId, -1),
      hostCountDelta(table, targetHostId, 1),
      memberDelta(table, vm.networkId, vm.hostId, -1),
      memberDelta(table, vm.networkId, targetHostId, 1),
    ];
    try {
      await dynamodb.send(new TransactWriteCommand({ TransactItems: items }));
      const { runtime: _previous, ...rest } = vm;
      return toVmView({
        ...rest,
        ...(recovered ? { state: 'provisioning', stateReason: restartedBecause, lastRecovery: recovered } : {}),
        hostId: targetHostId,
        ...(target.vmRuntime ? { runtime: target.vmRuntime } : {}),
        endpointAddress: target.address,
        endpointVersion: version,
        updatedAt,
      });
    } catch (error) {
      const codes = cancellationCodes(error);
      if (!codes) throw error;
      if (codes[3] === 'ConditionalCheckFailed') {
        if (named) throw await refusedHostError(table, targetHostId, 'targetHostId');
        fullHosts.add(targetHostId);
      }
      // The VM moved or was deleted under us: read again and decide afresh.
      await backoff(attempt);
    }
  }
  throw new TooBusyError(`vm ${vmId}`);
}

export interface ReleasedVm {
  vmId: string;
  networkId: string;
  diskIds: string[];
  serviceAccountId?: string;
}

/** Seconds a released VM's record is kept: long enough for any redelivery of its release. */
const RELEASE_RECORD_SECONDS = 24 * 3600;

/**
 * Deletes a VM and releases its address; the slot keeps its version so no agent ever goes back.
 * A tenant's delete refuses a VM with disks. The resource graph's release (`release: true`)
 * instead detaches them in the same transaction and records what the VM used, so a release
 * interrupted after this point can still address those nodes again.
 */
export async function deleteVm(
  table: string,
  region: string,
  tenantId: string,
  vmId: string,
  options: { release?: boolean } = {},
): Promise<{ networkId: string; released: EndpointEntry }> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const vm = assertHomeRegion(await getVm(table, tenantId, vmId), region, `vm ${vmId}`);
    const diskIds = [...(vm.diskIds ?? [])].sort();
    if (diskIds.length > 0 && !options.release) throw new InUseError(`vm ${vmId} has disks attached: ${diskIds.join(', ')}; detach them first`);
    if (vm.migration)
      throw new ConflictError(`vm ${vmId} is migrating (${vm.migration.phase}) to host ${vm.migration.targetHostId}: delete it once the migration ended`);
    const slot = await getItem<SlotItem>(table, keys.slot(vm.networkId, vm.ip));
    if (!slot || slot.vmId !== vmId) throw new Error(`slot ${vm.networkId}/${vm.ip} does not belong to vm ${vmId}`);
    const free = freeListEntry(vm.networkId);
    const items: TransactItem[] = [
      {
        Delete: {
          TableName: table,
          Key: keys.vm(vmId),
          // A disk attached meanwhile keeps the VM (or, when releasing, is detached below only if it was seen).
          ConditionExpression:
            diskIds.length > 0
              ? 'hostId = :host AND diskIds = :disks AND attribute_not_exists(migration)'
              : 'hostId = :host AND attribute_not_exists(diskIds) AND attribute_not_exists(migration)',
          ExpressionAttributeValues: { ':host': vm.hostId, ...(diskIds.length > 0 ? { ':disks': new Set(diskIds) } : {}) },
        },
      },
      {
        Update: {
          TableName: table,
          Key: keys.slot(vm.networkId, vm.ip),
          // Released, it goes on the network's free list, for a create to reuse under the next version.
          UpdateExpression: 'SET #state = :released, version = :version, gsi2pk = :free, gsi2sk = :position REMOVE vmId, hostId, endpoint',
          ConditionExpression: 'version = :previous AND vmId = :vm',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':released': 'released',
            ':version': slot.version + 1,
            ':previous': slot.version,
            ':vm': vmId,
            ':free': free.gsi2pk,
            ':position': free.gsi2sk,
          },
        },
      },
      hostCountDelta(table, vm.hostId, -1),
      memberDelta(table, vm.networkId, vm.hostId, -1),
      { Delete: { TableName: table, Key: keys.hostKeys(vmId) } },
      { Delete: { TableName: table, Key: keys.vmConsole(vmId) } },
      // Given back to the tenant's quota here, once: the VM's conditional delete is in the same transaction.
      ...quotaRelease(table, tenantId, region, { vms: 1 }),
    ];
    if (options.release) {
      for (const diskId of diskIds) {
        items.push({
          Update: {
            TableName: table,
            Key: keys.disk(diskId),
            UpdateExpression: 'SET #state = :available, updatedAt = :now ADD revision :one REMOVE attachedTo',
            ConditionExpression: 'attachedTo = :vm',
            ExpressionAttributeNames: { '#state': 'state' },
            ExpressionAttributeValues: { ':available': 'available', ':now': new Date().toISOString(), ':one': 1, ':vm': vmId },
          },
        });
      }
      const released: ReleasedVm & Record<string, unknown> = {
        ...keys.releasedVm(vmId),
        kind: 'released-vm',
        vmId,
        networkId: vm.networkId,
        diskIds,
        serviceAccountId: vm.serviceAccountId,
        expiresAt: Math.floor(Date.now() / 1000) + RELEASE_RECORD_SECONDS,
      };
      items.push({ Put: { TableName: table, Item: released } });
    }
    try {
      await dynamodb.send(new TransactWriteCommand({ TransactItems: items }));
      // What the hosts of its network hold of its address from now on.
      return { networkId: vm.networkId, released: { ip: vm.ip, version: slot.version + 1, state: 'released' } };
    } catch (error) {
      if (!cancellationCodes(error)) throw error;
      await backoff(attempt);
    }
  }
  throw new TooBusyError(`vm ${vmId}`);
}
