import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamodb } from '../platform/clients.ts';
import { keys } from '../core/table-keys.ts';
import { healthOf, MAYBE_BACK_MS, type Liveness } from './host-health.ts';
import type { IndexedHost } from './hosts.ts';
import { placementIndexAttributes } from './placement.ts';

/** A host to take out of the placement index, or to put back in it (with its shard). */
export type PlacementIndexChange = { hostId: string; out: true } | { hostId: string; out: false; shard: string };

/**
 * What the minute's sweep changes in the placement index, from the fleet's health. Placement
 * passes over hosts that are not healthy, but a dead host with room sorts among the freest of its
 * shard and every placement would read past it: a host silent for MAYBE_BACK_MS leaves the index, and
 * so does one never heard from that was registered that long ago (an operator registered it and no
 * agent ever ran there; a fleet's worth of those would hide every live host from placement's
 * pages). A healthy host that belongs in the index and is not there (back from the dead, its agent
 * started at last, or registered before the index existed) goes back in; an agent's registration
 * puts it back too.
 */
export function placementIndexChanges(
  hosts: readonly IndexedHost[],
  liveness: ReadonlyMap<string, Liveness>,
  region: string,
  nowMs: number,
): PlacementIndexChange[] {
  const changes: PlacementIndexChange[] = [];
  for (const host of hosts) {
    const seen = liveness.get(host.hostId);
    if (!seen) continue;
    if (host.gsi5pk !== undefined) {
      const silentSinceMs = seen.lastSeenMs ?? Date.parse(host.createdAt);
      if (nowMs - silentSinceMs >= MAYBE_BACK_MS) changes.push({ hostId: host.hostId, out: true });
      continue;
    }
    const belongs = placementIndexAttributes(host, host.region ?? region);
    if (belongs && healthOf(seen, nowMs) === 'healthy') changes.push({ hostId: host.hostId, out: false, shard: belongs.gsi5pk });
  }
  return changes;
}

/**
 * Applies the changes, each on the condition that the host is still as it was read: a host taken
 * out is still in the shard; one put back is still out, not cordoned, runs VMs and may be chosen (a
 * cordon or a registration meanwhile wins). Its free capacity is computed from its count as the
 * write applies it.
 */
export async function applyPlacementIndexChanges(table: string, changes: readonly PlacementIndexChange[]): Promise<number> {
  let applied = 0;
  for (const change of changes) {
    try {
      await dynamodb.send(
        change.out
          ? new UpdateCommand({
              TableName: table,
              Key: keys.host(change.hostId),
              UpdateExpression: 'REMOVE gsi5pk',
              ConditionExpression: 'attribute_exists(gsi5pk)',
            })
          : new UpdateCommand({
              TableName: table,
              Key: keys.host(change.hostId),
              UpdateExpression: 'SET gsi5pk = :shard, gsi5sk = #capacity - vmCount',
              ConditionExpression:
                'attribute_exists(pk) AND attribute_not_exists(gsi5pk) AND (attribute_not_exists(cordoned) OR cordoned = :no) AND (attribute_not_exists(vmRuntime) OR vmRuntime <> :none) AND (attribute_not_exists(autoPlacement) OR autoPlacement <> :off)',
              ExpressionAttributeNames: { '#capacity': 'capacity' },
              ExpressionAttributeValues: { ':shard': change.shard, ':no': false, ':none': 'none', ':off': 'off' },
            }),
      );
      applied++;
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
  return applied;
}
