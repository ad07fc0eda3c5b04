import type { MigrationRecord } from '#events/migrations.ts';
import type { HostItem } from '#events/records.ts';
import { newId } from '../core/ids.ts';
import { ConflictError } from '../core/errors.ts';
import { getItem, type TransactItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { hostCountDelta, memberDelta } from './vm-counts.ts';
import { vmUpdate } from './vm-record-update.ts';
import type { StoredVm } from './vms.ts';

/**
 * The writes that start a live migration of `vm` to `target`, all or nothing: the VM records it
 * (phase `preparing`; refused if one runs already, if the VM stopped running or moved, or if its
 * disks are no longer `diskIds`: the destination copies those); the destination's room is taken now (refused when full), and it joins the VM's
 * network now, so it has the network's tunnels before the guest arrives; each end gets an item
 * that puts the VM in its host configs while the migration runs.
 */
export function liveMigrationStart(
  table: string,
  vm: StoredVm,
  target: HostItem,
  source: HostItem,
  now: string,
  diskIds: readonly string[],
): { items: TransactItem[]; migration: MigrationRecord } {
  const migration: MigrationRecord = {
    migrationId: newId('mig'),
    phase: 'preparing',
    sourceHostId: vm.hostId,
    sourceAddress: source.address,
    targetHostId: target.hostId,
    targetAddress: target.address,
    ...(source.migrationCertificate ? { sourceCertificate: source.migrationCertificate } : {}),
    ...(target.migrationCertificate ? { targetCertificate: target.migrationCertificate } : {}),
    startedAt: now,
    updatedAt: now,
  };
  const endItem = (hostId: string): TransactItem => ({
    Put: {
      TableName: table,
      Item: { ...keys.hostMigration(hostId, vm.vmId), kind: 'host-migration', vmId: vm.vmId, migrationId: migration.migrationId },
    },
  });
  const items: TransactItem[] = [
    vmUpdate(
      table,
      vm.vmId,
      'SET #mig = :migration, updatedAt = :now',
      `hostId = :from AND attribute_not_exists(#mig) AND ${diskIds.length > 0 ? 'diskIds = :disks' : 'attribute_not_exists(diskIds)'} AND #state = :running AND (attribute_not_exists(powerState) OR powerState = :running)`,
      { ':migration': migration, ':now': now, ':from': vm.hostId, ':running': 'running', ...(diskIds.length > 0 ? { ':disks': new Set(diskIds) } : {}) },
    ),
    hostCountDelta(table, target.hostId, 1),
    memberDelta(table, vm.networkId, target.hostId, 1),
    endItem(vm.hostId),
    endItem(target.hostId),
  ];
  return { items, migration };
}

/** Why a VM cannot move while its live migration runs. */
export const migratingRefusal = (vmId: string, migration: MigrationRecord) =>
  `vm ${vmId} is migrating already (${migration.phase}, to host ${migration.targetHostId}): wait for it to end`;

/**
 * A disk moves with its guest only if it has a slot (a PCI address the destination plugs it at
 * too): disks attached before slots were recorded get one when attached again.
 */
export async function assertDisksHaveSlots(table: string, vmId: string, diskIds: readonly string[]): Promise<void> {
  const disks = await Promise.all(diskIds.map((diskId) => getItem<{ diskId: string; slot?: number }>(table, keys.disk(diskId))));
  const unslotted = disks.filter((disk) => disk?.slot === undefined).map((disk, index) => disk?.diskId ?? diskIds[index]);
  if (unslotted.length > 0)
    throw new ConflictError(
      `vm ${vmId}'s disks ${unslotted.join(', ')} were attached before disk slots were kept: detach and attach them again before it moves live`,
    );
}
