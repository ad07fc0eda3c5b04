import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { HostItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { getItems, membersOf } from '../core/store.ts';
import { indexes, indexKeys, keys } from '../core/table-keys.ts';
import { type HostAcceptance, type HostReader, type MemberReader, placeFromIndex, placePacked, type PlacementRules, type ShardReader } from './placement.ts';

/**
 * One page of one shard of a region's placement index (gsi5), freest first, hosts with room only
 * (free capacity above 0). An index is eventually consistent: a host's count may lag a moment,
 * which the create's transaction settles (its condition is the host's room, read at commit).
 */
export function shardReader(table: string, region: string): ShardReader {
  return async (shard, limit, after) => {
    const page = await dynamodb.send(
      new QueryCommand({
        TableName: table,
        IndexName: indexes.gsi5,
        KeyConditionExpression: 'gsi5pk = :shard AND gsi5sk > :full',
        ExpressionAttributeValues: { ':shard': indexKeys.placementShard(region, shard), ':full': 0 },
        ScanIndexForward: false,
        Limit: limit,
        ...(after ? { ExclusiveStartKey: after } : {}),
      }),
    );
    return { hosts: (page.Items ?? []) as HostItem[], ...(page.LastEvaluatedKey ? { next: page.LastEvaluatedKey } : {}) };
  };
}

/** The hosts running a network's VMs, with how many each runs (eventually consistent: placement's transaction settles a count read a moment late). */
const memberReader =
  (table: string, networkId: string): MemberReader =>
  () =>
    membersOf(table, networkId, false);

const hostReader =
  (table: string): HostReader =>
  (hostIds) =>
    getItems<HostItem>(
      table,
      hostIds.map((hostId) => keys.host(hostId)),
    );

/**
 * A host of `rules.region` for a VM, or undefined when none found will take it. A VM of a packed
 * network (`packInto`: its id) goes to one of the hosts already running the network when one will
 * do; otherwise, and for every other VM, to a host from the placement index (placement.ts).
 */
export async function placeHost(table: string, rules: PlacementRules, acceptance?: HostAcceptance, packInto?: string): Promise<HostItem | undefined> {
  const packed = packInto ? await placePacked(memberReader(table, packInto), hostReader(table), rules, acceptance) : undefined;
  return packed ?? (await placeFromIndex(shardReader(table, rules.region), rules, acceptance)).host;
}
