import type { NetworkChange } from '#events/endpoints.ts';
import type { HostItem } from '#events/records.ts';
import { toEndpointEntry } from './network-changes.ts';
import { deliveredAlready, deliveredVersionsIn } from './delivered-endpoints.ts';
import { packHostBodies, type Outgoing } from './host-batches.ts';
import { getItem, readNetworkMembers, readNetworkPartition, type NetworkPartition } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { inRegion } from '../core/regions.ts';

export interface FanOutWork {
  id: string;
  change: NetworkChange;
}

export type SendToQueue = (queueUrl: string, body: string) => Promise<void>;

/**
 * Delivers network changes to exactly the hosts that need them: the hosts that run a VM of the
 * network when the change is fanned out. The network's partition is read after the change
 * committed, so a host that joined concurrently is either seen here or gets a snapshot that
 * already contains the change. Every region's stream carries every region's changes (the table
 * is global), and each region delivers only to its own hosts. Only a join reads the network's
 * every slot (its snapshot); other changes read its members, and an endpoint change its own slot
 * (whether the fast path delivered it already) unless `checkDelivered` is off (the fast path
 * itself). Returns the work items that failed, each with the reason.
 */
export async function fanOut(
  table: string,
  region: string,
  work: readonly FanOutWork[],
  send: SendToQueue,
  checkDelivered = true,
): Promise<Map<string, unknown>> {
  const failed = new Map<string, unknown>();
  const needs = partitionNeeds(work, checkDelivered);
  const partitions = new Map<string, Promise<NetworkPartition>>();
  const partitionOf = (networkId: string) => {
    let partition = partitions.get(networkId);
    if (!partition) {
      const need = needs.get(networkId);
      partition = need?.everySlot ? readNetworkPartition(table, networkId) : readNetworkMembers(table, networkId, [...(need?.slots ?? [])]);
      partitions.set(networkId, partition);
    }
    return partition;
  };

  const outgoing: Outgoing[] = [];
  await Promise.all(
    work.map(async ({ id, change }) => {
      try {
        if (change.kind === 'credentials') {
          outgoing.push({ hostId: change.hostId, sourceId: id, message: { kind: 'credentials-changed', vmId: change.vmId } });
          return;
        }
        if (change.kind === 'disk-deleted') {
          outgoing.push({ hostId: change.hostId, sourceId: id, message: { kind: 'disk-deleted', diskId: change.diskId, poolId: change.poolId } });
          return;
        }
        outgoing.push(...messagesFor(change, await partitionOf(change.networkId), id));
      } catch (error) {
        failed.set(id, error);
      }
    }),
  );

  const bodies = packHostBodies(outgoing);
  await Promise.all(
    bodies.map(async (body) => {
      try {
        const queueUrl = await queueUrlOf(table, body.hostId, region);
        if (queueUrl) await send(queueUrl, body.body);
      } catch (error) {
        for (const id of body.sourceIds) failed.set(id, error);
      }
    }),
  );
  return failed;
}

/** What the batch's changes need of each network: every slot (a join's snapshot), or the slots whose delivery the backstop checks. */
function partitionNeeds(work: readonly FanOutWork[], checkDelivered: boolean): Map<string, { everySlot: boolean; slots: Set<string> }> {
  const needs = new Map<string, { everySlot: boolean; slots: Set<string> }>();
  for (const { change } of work) {
    if (change.kind === 'credentials' || change.kind === 'disk-deleted') continue;
    const need = needs.get(change.networkId) ?? { everySlot: false, slots: new Set<string>() };
    if (change.kind === 'join') need.everySlot = true;
    if (change.kind === 'endpoint' && checkDelivered) need.slots.add(change.entry.ip);
    needs.set(change.networkId, need);
  }
  return needs;
}

export function messagesFor(
  change: Exclude<NetworkChange, { kind: 'credentials' | 'disk-deleted' }>,
  partition: NetworkPartition,
  sourceId: string,
): Outgoing[] {
  const { networkId } = change;
  switch (change.kind) {
    case 'endpoint':
      // Delivered already by the function that committed it (or a later version was): nothing to send again.
      if (deliveredAlready(change, deliveredVersionsIn(partition.slots))) return [];
      return partition.members
        .filter((member) => member.vmCount > 0)
        .map((member) => ({
          hostId: member.hostId,
          sourceId,
          message: { kind: 'endpoints', networkId, epoch: member.epoch, snapshot: false, entries: [change.entry] },
        }));
    case 'join': {
      const member = partition.members.find((candidate) => candidate.hostId === change.hostId);
      // Already left again: the leave that follows is all the host needs.
      if (!member || member.vmCount <= 0) return [];
      const entries = partition.slots.map(toEndpointEntry);
      return [{ hostId: change.hostId, sourceId, message: { kind: 'endpoints', networkId, epoch: member.epoch, snapshot: true, entries } }];
    }
    case 'leave':
      return [{ hostId: change.hostId, sourceId, message: { kind: 'leave', networkId, epoch: change.epoch } }];
    case 'allowed-sources':
      return partition.members
        .filter((member) => member.vmCount > 0)
        .map((member) => ({ hostId: member.hostId, sourceId, message: { kind: 'allowed-sources-changed', networkId } }));
  }
}

/** A host's queue and region never change once registered, so they are looked up once per container. */
const queueUrls = new Map<string, string | null>();

/** The host's queue, or null for a host of another region (that region's fan-out serves it). */
async function queueUrlOf(table: string, hostId: string, region: string): Promise<string | null> {
  const known = queueUrls.get(hostId);
  if (known !== undefined) return known;
  const host = await getItem<HostItem>(table, keys.host(hostId));
  if (!host) throw new Error(`host ${hostId} has no registration`);
  const queueUrl = inRegion(host, region) ? host.queueUrl : null;
  queueUrls.set(hostId, queueUrl);
  return queueUrl;
}
