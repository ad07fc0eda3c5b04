import type { EndpointEntry, NetworkChange } from '#events/endpoints.ts';
import type { AllowedSourceRecord, DiskRecord, MemberItem, MetadataItem, SlotItem, VmItem } from '#events/records.ts';

export const toEndpointEntry = ({ ip, version, state, vmId, hostId, endpoint }: SlotItem): EndpointEntry => ({
  ip,
  version,
  state,
  vmId,
  hostId,
  endpoint,
});

/**
 * What one change to a metadata item means for host agents: a slot whose version moved is an
 * endpoint change; a host whose VM count in a network leaves or reaches zero joins or leaves it;
 * a VM whose service account, egress policy, attributes, launch (power intent, boot generation,
 * image ready, disks attached or changed), live migration or revoked network pairs changed needs its host (and both ends
 * of its migration) to fetch them again; a deleted
 * disk's file goes from the host that holds it; a network's allowed sources changed: the hosts
 * running its VMs fetch them again.
 */
export function changesFromItemUpdate(oldItem: MetadataItem | undefined, newItem: MetadataItem | undefined): NetworkChange[] {
  const kind = newItem?.kind ?? oldItem?.kind;
  if (kind === 'slot') {
    const before = oldItem as SlotItem | undefined;
    const after = newItem as SlotItem | undefined;
    if (!after || before?.version === after.version) return [];
    return [{ kind: 'endpoint', networkId: after.networkId, entry: toEndpointEntry(after) }];
  }
  if (kind === 'vm') {
    const before = oldItem as VmItem | undefined;
    const after = newItem as VmItem | undefined;
    if (!before || !after) return [];
    // What the host serves or does for the VM; its state is what the host itself reported, so not here.
    const hostConfig = (vm: VmItem) =>
      JSON.stringify([
        vm.serviceAccountId,
        vm.egress,
        vm.attributes,
        [...(vm.shuffleJobIds ?? [])].sort(),
        vm.powerState,
        vm.bootGeneration,
        vm.waitingForImage,
        [...(vm.diskIds ?? [])].sort(),
        vm.disksRevision,
        vm.migration && [vm.migration.migrationId, vm.migration.phase, vm.migration.port],
        // Its host refuses tokens of a revoked pair: it fetches the revocations with the VM's pair secret.
        vm.pairRevocationsRevision,
      ]);
    if (hostConfig(before) === hostConfig(after)) return [];
    // Both ends of a live migration play a part in it (the destination before the VM is its own).
    const hosts = new Set([
      after.hostId,
      ...[before.migration, after.migration].flatMap((migration) => (migration ? [migration.sourceHostId, migration.targetHostId] : [])),
    ]);
    return [...hosts].map((hostId) => ({ kind: 'credentials', networkId: after.networkId, hostId, vmId: after.vmId }));
  }
  if (kind === 'disk') {
    const before = oldItem as DiskRecord | undefined;
    if (!before?.hostId || newItem) return [];
    return [{ kind: 'disk-deleted', hostId: before.hostId, diskId: before.diskId, poolId: before.poolId }];
  }
  if (kind === 'allowed-source') {
    // Allowed or no longer: the hosts running the network's VMs fetch its allowed sources again.
    if (Boolean(oldItem) === Boolean(newItem)) return [];
    return [{ kind: 'allowed-sources', networkId: ((newItem ?? oldItem) as AllowedSourceRecord).networkId }];
  }
  if (kind === 'member') {
    const before = (oldItem as MemberItem | undefined)?.vmCount ?? 0;
    const after = newItem as MemberItem | undefined;
    if (!after) return [];
    const { networkId, hostId, epoch } = after;
    if (before <= 0 && after.vmCount > 0) return [{ kind: 'join', networkId, hostId, epoch }];
    if (before > 0 && after.vmCount <= 0) return [{ kind: 'leave', networkId, hostId, epoch }];
  }
  return [];
}
