import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { PowerState, ReportVmStateRequest, VmConsoleOutput, VmState } from '#events/vm-lifecycle.ts';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import { backoff, getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { assertHomeRegion } from '../core/regions.ts';
import { getVm, toVmView, type StoredVm, type VmView } from './vms.ts';

export type PowerAction = 'start' | 'stop' | 'reboot';

/** What a VM's power fields are: the tenant's intent and the boot generation its host follows. */
export interface PowerFields {
  state: VmState;
  stateReason?: string;
  powerState: PowerState;
  bootGeneration: number;
}

export const powerOf = (vm: Pick<StoredVm, 'state' | 'stateReason' | 'powerState' | 'bootGeneration'>): PowerFields => ({
  state: vm.state,
  ...(vm.stateReason ? { stateReason: vm.stateReason } : {}),
  powerState: vm.powerState ?? 'running',
  bootGeneration: vm.bootGeneration ?? 0,
});

/**
 * What a start, stop or reboot makes of a VM, as EC2's StartInstances, StopInstances and
 * RebootInstances: stopping a stopped VM or starting a running one changes nothing; a start boots
 * a stopped or failed VM again (a new boot generation: its host boots it afresh); a reboot is for
 * a running VM only. `undefined`: nothing to change.
 */
export function powerChange(vm: PowerFields, action: PowerAction): PowerFields | undefined {
  switch (action) {
    case 'stop':
      if (vm.powerState === 'stopped') return undefined;
      // Nothing runs yet (or any more): stopped at once. Otherwise its host stops it and says so.
      return vm.state === 'provisioning' || vm.state === 'failed' || vm.state === 'stopped'
        ? { state: 'stopped', stateReason: 'stopped by its owner', powerState: 'stopped', bootGeneration: vm.bootGeneration }
        : { state: 'stopping', stateReason: 'stopped by its owner', powerState: 'stopped', bootGeneration: vm.bootGeneration };
    case 'start':
      if (vm.powerState === 'running' && vm.state !== 'failed' && vm.state !== 'stopped') return undefined;
      return { state: 'provisioning', powerState: 'running', bootGeneration: vm.bootGeneration + 1 };
    case 'reboot':
      if (vm.state !== 'running' || vm.powerState !== 'running')
        throw new ConflictError(
          `vm is ${vm.state}${vm.powerState === 'stopped' ? ' (stopped by its owner)' : ''}; only a running VM can be rebooted: start it instead`,
        );
      return { ...vm, stateReason: 'rebooted by its owner', bootGeneration: vm.bootGeneration + 1 };
  }
}

/**
 * Starts, stops or reboots a tenant's VM: records the intent (its host agent is told through the
 * stream, as for any change of what it serves the VM) and answers the VM as it now is. Conditional
 * on the intent read, so two concurrent requests cannot lose one.
 */
export async function changePower(table: string, region: string, tenantId: string, vmId: string, action: PowerAction): Promise<VmView> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const vm = assertHomeRegion(await getVm(table, tenantId, vmId), region, `vm ${vmId}`);
    // Two hosts hold the guest while it moves: a stop or reboot waits until one does.
    if (vm.migration)
      throw new ConflictError(`vm ${vmId} is migrating (${vm.migration.phase}) to host ${vm.migration.targetHostId}: ${action} it once the migration ended`);
    const before = powerOf(vm);
    const after = powerChange(before, action);
    if (!after) return toVmView(vm);
    const updatedAt = new Date().toISOString();
    try {
      await dynamodb.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.vm(vmId),
          UpdateExpression: `SET #state = :state, powerState = :power, bootGeneration = :generation, updatedAt = :now ${after.stateReason ? ', stateReason = :reason' : 'REMOVE stateReason'}`,
          ConditionExpression:
            'tenantId = :tenant AND (powerState = :powerBefore OR attribute_not_exists(powerState)) AND (bootGeneration = :generationBefore OR attribute_not_exists(bootGeneration)) AND #state = :stateBefore AND attribute_not_exists(migration)',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':state': after.state,
            ':power': after.powerState,
            ':generation': after.bootGeneration,
            ':now': updatedAt,
            ':tenant': tenantId,
            ':powerBefore': before.powerState,
            ':generationBefore': before.bootGeneration,
            ':stateBefore': before.state,
            ...(after.stateReason ? { ':reason': after.stateReason } : {}),
          },
        }),
      );
      const { stateReason: _dropped, ...rest } = vm;
      return toVmView({ ...rest, ...after, updatedAt });
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      // Its host reported, or another request changed it: decide again on what it is now.
      await backoff(attempt);
    }
  }
  throw new ConflictError(`vm ${vmId} is changing too fast; retry`);
}

/**
 * Records what a VM's host agent saw: its state and what runs it (unless a later report is already
 * recorded: the host's own clock orders them) and its console's tail. Only the VM's current host may report; a
 * host it left is told so (409) and stops reporting.
 */
export async function reportVmState(table: string, hostId: string, vmId: string, report: ReportVmStateRequest): Promise<{ accepted: boolean }> {
  const vm = await getItem<StoredVm>(table, keys.vm(vmId));
  if (!vm) throw new NotFoundError('vm', vmId);
  if (vm.hostId !== hostId) throw new ConflictError(`vm ${vmId} runs on host ${vm.hostId}, not ${hostId}`);
  const now = new Date().toISOString();
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.vm(vmId),
        UpdateExpression: `SET #state = :state, stateObservedAt = :at, updatedAt = :now${report.runtime ? ', runtime = :runtime' : ''} ${report.reason ? ', stateReason = :reason' : 'REMOVE stateReason'}`,
        ConditionExpression: 'hostId = :host AND (attribute_not_exists(stateObservedAt) OR stateObservedAt < :at)',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: {
          ':state': report.state,
          ':at': report.observedAt,
          ':now': now,
          ':host': hostId,
          ...(report.reason ? { ':reason': report.reason } : {}),
          ...(report.runtime ? { ':runtime': report.runtime } : {}),
        },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    return { accepted: false };
  }
  if (report.console !== undefined) {
    await dynamodb
      .send(
        new PutCommand({
          TableName: table,
          Item: { ...keys.vmConsole(vmId), kind: 'vm-console', vmId, output: report.console, observedAt: report.observedAt, updatedAt: now },
          ConditionExpression: 'attribute_not_exists(observedAt) OR observedAt < :at',
          ExpressionAttributeValues: { ':at': report.observedAt },
        }),
      )
      .catch((error: unknown) => {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      });
  }
  return { accepted: true };
}

/** The serial console's tail of a tenant's VM, as its host last sent it. */
export async function getConsoleOutput(table: string, tenantId: string, vmId: string): Promise<VmConsoleOutput> {
  await getVm(table, tenantId, vmId);
  const { Item } = await dynamodb.send(new GetCommand({ TableName: table, Key: keys.vmConsole(vmId) }));
  const item = Item as { output: string; updatedAt: string } | undefined;
  return { vmId, output: item?.output ?? '', ...(item ? { updatedAt: item.updatedAt } : {}) };
}
