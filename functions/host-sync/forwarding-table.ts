import type { ForwardingTableResponse } from '#events/endpoints.ts';
import type { MemberItem } from '#events/records.ts';
import { getHost } from '../compute/hosts.ts';
import { toEndpointEntry } from './network-changes.ts';
import { queryAll, readNetworkPartition } from '../core/store.ts';
import { indexes, indexKeys } from '../core/table-keys.ts';

/**
 * Everything a host agent should hold: each network the host runs a VM of, whole, with the
 * host's membership epoch read together with the slots. Agents fetch it on start to converge.
 */
export async function forwardingTableOf(table: string, hostId: string): Promise<ForwardingTableResponse> {
  await getHost(table, hostId);
  const memberships = await queryAll<MemberItem>({
    TableName: table,
    IndexName: indexes.gsi2,
    KeyConditionExpression: 'gsi2pk = :pk',
    ExpressionAttributeValues: { ':pk': indexKeys.networksOfHost(hostId) },
  });
  const networks = await Promise.all(
    memberships
      .filter((membership) => membership.vmCount > 0)
      .map(async ({ networkId }) => {
        const { slots, members } = await readNetworkPartition(table, networkId);
        const member = members.find((candidate) => candidate.hostId === hostId);
        if (!member || member.vmCount <= 0) return undefined;
        return { networkId, epoch: member.epoch, entries: slots.map(toEndpointEntry) };
      }),
  );
  return { hostId, networks: networks.filter((network) => network !== undefined) };
}
