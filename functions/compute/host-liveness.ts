import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { HostItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { ClientError, ConflictError } from '../core/errors.ts';
import { getItems } from '../core/store.ts';
import { type Liveness, unplaceableBecause } from './host-health.ts';
import { toHostView, type HostView } from './hosts.ts';

/**
 * Host agents' heartbeats, in the region's liveness table (one item per host: written at each
 * heartbeat, so kept out of the global table's replication and stream).
 */

/** A heartbeat's item outlives a host that is gone for good by this long. */
const KEEP_SECONDS = 7 * 24 * 3600;

/** Records that a host's agent is alive now: one write. */
export async function recordHeartbeat(livenessTable: string, hostId: string, nowMs = Date.now()): Promise<void> {
  await dynamodb.send(
    new PutCommand({
      TableName: livenessTable,
      Item: { hostId, lastSeen: nowMs, expiresAt: Math.floor(nowMs / 1000) + KEEP_SECONDS },
    }),
  );
}

/** When each host was last heard from (ms), for the hosts that ever were: one read per hundred hosts. */
export async function lastSeenOf(livenessTable: string, hostIds: Iterable<string>): Promise<Map<string, number>> {
  const items = await getItems<{ hostId: string; lastSeen: number }>(
    livenessTable,
    [...new Set(hostIds)].map((hostId) => ({ hostId })),
  );
  return new Map(items.map((item) => [item.hostId, item.lastSeen]));
}

/** Each host's liveness: its last heartbeat and its cordon. */
export async function livenessOf(livenessTable: string, hosts: readonly HostItem[]): Promise<Map<string, Liveness>> {
  const seen = await lastSeenOf(
    livenessTable,
    hosts.map((host) => host.hostId),
  );
  return new Map(hosts.map((host) => [host.hostId, { lastSeenMs: seen.get(host.hostId), cordoned: host.cordoned === true }]));
}

/** The hosts as the API shows them, each with its health now. */
export async function hostViews(livenessTable: string, hosts: readonly HostItem[]): Promise<HostView[]> {
  const liveness = await livenessOf(livenessTable, hosts);
  const now = Date.now();
  return hosts.map((host) => toHostView(host, liveness.get(host.hostId)!, now));
}

/** The hosts placement may use now: healthy ones (heard from lately, not cordoned). */
export async function placeableHosts(livenessTable: string, hosts: readonly HostItem[]): Promise<HostItem[]> {
  const liveness = await livenessOf(livenessTable, hosts);
  const now = Date.now();
  return hosts.filter((host) => unplaceableBecause(host.hostId, liveness.get(host.hostId)!, now) === undefined);
}

/**
 * Refuses a host named for a new VM or a move when it is not healthy (a VM sent there would not
 * run): 503 while it may be back in a moment, else 409.
 */
export async function assertPlaceable(livenessTable: string, host: HostItem, field: 'hostId' | 'targetHostId'): Promise<void> {
  const liveness = await livenessOf(livenessTable, [host]);
  const refusal = unplaceableBecause(host.hostId, liveness.get(host.hostId)!, Date.now());
  if (!refusal) return;
  const message = `${field}: ${refusal.reason}`;
  throw refusal.transient ? new ClientError(503, message) : new ConflictError(message);
}
