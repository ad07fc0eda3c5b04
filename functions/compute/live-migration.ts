import type { z } from 'zod';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { MigrationOutcome, MigrationRecord, ReportMigrationRequest } from '#events/migrations.ts';
import type { SlotItem } from '#events/records.ts';
import type * as responses from '#events/responses.ts';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError } from '../core/errors.ts';
import { backoff, cancellationCodes, getItem, queryAll, type TransactItem } from '../core/store.ts';
import { indexKeys, keys } from '../core/table-keys.ts';
import { getVmFor, MAX_ATTEMPTS, type StoredVm, TooBusyError } from './vms.ts';
import { hostCountDelta, memberDelta } from './vm-counts.ts';
import { vmUpdate } from './vm-record-update.ts';
import { MigrationReportRefused, migrationStep } from './migration-rules.ts';

type ReportAnswer = z.infer<typeof responses.MigrationReportAnswer>;

const ACTIVE_PHASES = { ':preparing': 'preparing', ':transferring': 'transferring' } as const;

/**
 * A host's report of a migration it is an end of (see migrationStep for what each does). Returns
 * the migration as it is after the report. `newPairKeyCiphertext` rotates the VM's pair secret at
 * the cut-over, as a cold move does.
 */
export async function reportMigration(
  table: string,
  hostId: string,
  vmId: string,
  report: ReportMigrationRequest,
  newPairKeyCiphertext?: (vmId: string) => Promise<string>,
): Promise<ReportAnswer> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const vm = await getVmFor(table, undefined, vmId);
    let step: ReturnType<typeof migrationStep>;
    try {
      step = migrationStep(vm.migration, vm.lastMigration, hostId, report);
    } catch (error) {
      if (error instanceof MigrationReportRefused) throw new ConflictError(error.message);
      throw error;
    }
    if (step.kind === 'none') return answerOf(vm);
    const migration = vm.migration!;
    const now = new Date().toISOString();
    const ofThisMigration = '#mig.#mid = :id';
    let items: TransactItem[];
    switch (step.kind) {
      case 'transfer':
        items = [
          phaseUpdate(table, vmId, `${ofThisMigration} AND #mig.#phase = :preparing`, 'transferring', now, {
            extra: ', #mig.#port = :port',
            values: { ':port': step.port, ':id': migration.migrationId, ':preparing': 'preparing' },
          }),
        ];
        break;
      case 'cut-over':
        items = await cutOverItems(table, vm, migration, now, await newPairKeyCiphertext?.(vmId));
        break;
      case 'clean-up':
        items = [
          phaseUpdate(table, vmId, `${ofThisMigration} AND #mig.#phase = :cutover`, 'cleaning-up', now, {
            extra: `${step.downtimeMs !== undefined ? ', #mig.#downtime = :downtime' : ''}${step.totalMs !== undefined ? ', #mig.#total = :total' : ''}`,
            values: {
              ':id': migration.migrationId,
              ':cutover': 'cut-over',
              ...(step.downtimeMs !== undefined ? { ':downtime': step.downtimeMs } : {}),
              ...(step.totalMs !== undefined ? { ':total': step.totalMs } : {}),
            },
          }),
        ];
        break;
      case 'complete':
        items = endItems(table, vm, migration, { outcome: 'completed' }, now);
        break;
      case 'abort':
        items = endItems(table, vm, migration, { outcome: 'aborted', reason: step.reason }, now);
        break;
    }
    try {
      await dynamodb.send(new TransactWriteCommand({ TransactItems: items }));
      return step.kind === 'complete' || step.kind === 'abort'
        ? { outcome: step.kind === 'complete' ? 'completed' : 'aborted' }
        : { phase: step.kind === 'transfer' ? 'transferring' : step.kind === 'cut-over' ? 'cut-over' : 'cleaning-up' };
    } catch (error) {
      if (!cancellationCodes(error)) throw error;
      // The VM changed under us (another report, a state report): read again and decide afresh.
      await backoff(attempt);
    }
  }
  throw new TooBusyError(`vm ${vmId}`);
}

const answerOf = (vm: StoredVm): ReportAnswer => (vm.migration ? { phase: vm.migration.phase } : vm.lastMigration ? { outcome: vm.lastMigration.outcome } : {});

function phaseUpdate(
  table: string,
  vmId: string,
  condition: string,
  phase: MigrationRecord['phase'],
  now: string,
  more: { extra: string; values: Record<string, unknown> },
): TransactItem {
  return vmUpdate(table, vmId, `SET #mig.#phase = :phase, #mig.#updated = :now, updatedAt = :now${more.extra}`, condition, {
    ':phase': phase,
    ':now': now,
    ...more.values,
  });
}

/**
 * The cut-over: the guest runs at the destination, so the VM's slot names the destination's
 * address under the next version and the VM is the destination's. The source's room is given back;
 * its membership of the network stays until it let go (`cleaned`), so it keeps the network's
 * tunnels and forwards what hosts that do not know yet still send it.
 */
async function cutOverItems(
  table: string,
  vm: StoredVm,
  migration: MigrationRecord,
  now: string,
  pairKeyCiphertext: string | undefined,
): Promise<TransactItem[]> {
  const slot = await getItem<SlotItem>(table, keys.slot(vm.networkId, vm.ip));
  if (!slot || slot.vmId !== vm.vmId) throw new Error(`slot ${vm.networkId}/${vm.ip} does not belong to vm ${vm.vmId}`);
  const version = slot.version + 1;
  return [
    vmUpdate(
      table,
      vm.vmId,
      `SET hostId = :to, endpointAddress = :address, endpointVersion = :version, gsi3pk = :onHost, runtime = :qemu, #mig.#phase = :cutover, #mig.#updated = :now, updatedAt = :now${pairKeyCiphertext ? ', pairKeyCiphertext = :pairKey' : ''}`,
      '#mig.#mid = :id AND hostId = :from AND #mig.#phase IN (:preparing, :transferring)',
      {
        ':to': migration.targetHostId,
        ':from': migration.sourceHostId,
        ':address': migration.targetAddress,
        ':version': version,
        ':onHost': indexKeys.vmsOnHost(migration.targetHostId),
        ':qemu': 'qemu',
        ':cutover': 'cut-over',
        ':now': now,
        ':id': migration.migrationId,
        ...ACTIVE_PHASES,
        ...(pairKeyCiphertext ? { ':pairKey': pairKeyCiphertext } : {}),
      },
    ),
    {
      Update: {
        TableName: table,
        Key: keys.slot(vm.networkId, vm.ip),
        UpdateExpression: 'SET hostId = :to, endpoint = :address, version = :version',
        ConditionExpression: 'version = :previous AND vmId = :vm',
        ExpressionAttributeValues: {
          ':to': migration.targetHostId,
          ':address': migration.targetAddress,
          ':version': version,
          ':previous': slot.version,
          ':vm': vm.vmId,
        },
      },
    },
    hostCountDelta(table, migration.sourceHostId, -1),
    // Its disks' data was copied with the guest: their files are the destination's now.
    ...[...(vm.diskIds ?? [])].map(
      (diskId): TransactItem => ({
        Update: {
          TableName: table,
          Key: keys.disk(diskId),
          UpdateExpression: 'SET hostId = :to',
          ConditionExpression: 'attachedTo = :vm',
          ExpressionAttributeValues: { ':to': migration.targetHostId, ':vm': vm.vmId },
        },
      }),
    ),
  ];
}

/**
 * The end of a migration: it goes from the VM into `lastMigration`, and each end's item goes.
 * Completed, the source leaves the network's membership it kept; aborted (only before the
 * cut-over), the destination gives back the room and the membership it took.
 */
function endItems(
  table: string,
  vm: StoredVm,
  migration: MigrationRecord,
  end: { outcome: 'completed' } | { outcome: 'aborted'; reason: string },
  now: string,
): TransactItem[] {
  const outcome: MigrationOutcome = {
    migrationId: migration.migrationId,
    ...end,
    sourceHostId: migration.sourceHostId,
    targetHostId: migration.targetHostId,
    startedAt: migration.startedAt,
    endedAt: now,
    ...(migration.downtimeMs !== undefined ? { downtimeMs: migration.downtimeMs } : {}),
    ...(migration.totalMs !== undefined ? { totalMs: migration.totalMs } : {}),
  };
  const aborted = end.outcome === 'aborted';
  return [
    vmUpdate(
      table,
      vm.vmId,
      'SET lastMigration = :outcome, updatedAt = :now REMOVE #mig',
      aborted ? '#mig.#mid = :id AND #mig.#phase IN (:preparing, :transferring)' : '#mig.#mid = :id',
      { ':outcome': outcome, ':now': now, ':id': migration.migrationId, ...(aborted ? ACTIVE_PHASES : {}) },
    ),
    ...(aborted
      ? [hostCountDelta(table, migration.targetHostId, -1), memberDelta(table, vm.networkId, migration.targetHostId, -1)]
      : [memberDelta(table, vm.networkId, migration.sourceHostId, -1)]),
    { Delete: { TableName: table, Key: keys.hostMigration(migration.sourceHostId, vm.vmId) } },
    { Delete: { TableName: table, Key: keys.hostMigration(migration.targetHostId, vm.vmId) } },
  ];
}

/** The VMs a host is one end of a migration of (source or destination), by id. */
export async function migratingVmIdsOfHost(table: string, hostId: string): Promise<string[]> {
  const items = await queryAll<{ vmId: string }>({
    TableName: table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :migration)',
    ExpressionAttributeValues: { ':pk': keys.host(hostId).pk, ':migration': 'MIGRATION#' },
    ConsistentRead: true,
  });
  return items.map((item) => item.vmId);
}
