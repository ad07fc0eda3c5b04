import type { z } from 'zod';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { AcknowledgeEndpointsRequest } from '#events/api.ts';
import type { MemberItem } from '#events/records.ts';
import type * as responses from '#events/responses.ts';
import { dynamodb } from '../platform/clients.ts';
import { membersOf, queryAll } from '../core/store.ts';
import { getVmFor, type StoredVm } from '../compute/vms.ts';

export type VmConvergenceView = z.infer<typeof responses.VmConvergence>;

/** One host agent's latest acknowledged endpoint version of one VM. */
export interface EndpointAckItem {
  vmId: string;
  hostId: string;
  version: number;
  acknowledgedAt: string;
  expiresAt: number;
}

/**
 * How long an acknowledgement is kept. Agents acknowledge again what they still hold well before
 * this (see the agent's `EndpointAcks`), so only acknowledgements of VMs gone from a host expire.
 */
export const ACK_TTL_SECONDS = 30 * 86_400;

const PENDING_SHOWN = 50;

/**
 * Records what a host's agent has applied: per VM, the highest endpoint version it holds. An
 * acknowledgement never moves back (a late, older one is ignored); the same version again only
 * extends its life.
 */
export async function recordEndpointAcks(convergenceTable: string, hostId: string, acks: AcknowledgeEndpointsRequest['acks'], now = new Date()): Promise<void> {
  const latest = new Map<string, number>();
  for (const { vmId, version } of acks) latest.set(vmId, Math.max(version, latest.get(vmId) ?? 0));
  await Promise.all(
    [...latest].map(async ([vmId, version]) => {
      try {
        await dynamodb.send(
          new UpdateCommand({
            TableName: convergenceTable,
            Key: { vmId, hostId },
            UpdateExpression: 'SET version = :version, acknowledgedAt = :now, expiresAt = :expires',
            ConditionExpression: 'attribute_not_exists(version) OR version <= :version',
            ExpressionAttributeValues: { ':version': version, ':now': now.toISOString(), ':expires': Math.floor(now.getTime() / 1000) + ACK_TTL_SECONDS },
          }),
        );
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }),
  );
}

/** How far a tenant's VM's current endpoint has spread among the hosts that need it. */
export async function vmConvergence(table: string, convergenceTable: string, tenantId: string | undefined, vmId: string): Promise<VmConvergenceView> {
  const vm = await getVmFor(table, tenantId, vmId);
  const [members, acks] = await Promise.all([
    membersOf(table, vm.networkId, true),
    queryAll<EndpointAckItem>({
      TableName: convergenceTable,
      KeyConditionExpression: 'vmId = :vm',
      ExpressionAttributeValues: { ':vm': vmId },
      ConsistentRead: true,
    }),
  ]);
  return summarizeConvergence(vm, members, acks);
}

/**
 * The hosts that need a VM's endpoint are those running a VM of its network (the ones the
 * fan-out sends it to); a host has it once its agent acknowledged that version or a later one.
 */
export function summarizeConvergence(
  vm: Pick<StoredVm, 'vmId' | 'hostId' | 'endpointAddress' | 'endpointVersion'>,
  members: Pick<MemberItem, 'hostId' | 'vmCount'>[],
  acks: Pick<EndpointAckItem, 'hostId' | 'version'>[],
): VmConvergenceView {
  const held = new Map(acks.map((ack) => [ack.hostId, ack.version]));
  const needing = members.filter((member) => member.vmCount > 0).map((member) => member.hostId);
  const pending = needing.filter((hostId) => (held.get(hostId) ?? 0) < vm.endpointVersion).sort();
  return {
    vmId: vm.vmId,
    hostId: vm.hostId,
    endpoint: { address: vm.endpointAddress, version: vm.endpointVersion },
    hostsTotal: needing.length,
    hostsConverged: needing.length - pending.length,
    converged: pending.length === 0,
    pendingHostIds: pending.slice(0, PENDING_SHOWN),
  };
}
