import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { HostItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { indexes, indexKeys } from '../core/table-keys.ts';
import { type HostAcceptance, placeFromIndex, type PlacementRules, type ShardReader } from './placement.ts';

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

/** A host of `rules.region` for a VM, from the placement index (placement.ts), or undefined when none found will take it. */
export async function placeHost(table: string, rules: PlacementRules, acceptance?: HostAcceptance): Promise<HostItem | undefined> {
  return (await placeFromIndex(shardReader(table, rules.region), rules, acceptance)).host;
}
