import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { DeleteCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { CreateNetworkRequest } from '#events/api.ts';
import type { NetworkItem } from '#events/records.ts';
import { capacityOf, normalizeCidr } from './cidr.ts';
import { dynamodb } from '../commons/clients.ts';
import { batchDelete } from './batch-delete.ts';
import { InUseError } from './errors.ts';
import { queryPage } from './pagination.ts';
import { queryAll } from './store.ts';
import { indexes, indexKeys, keys } from './table-keys.ts';
import { newId } from './ids.ts';
import { nodeAttributes, projectGuard, putInProject } from './projects.ts';
import { getTenantItem } from './access.ts';
import { assertHomeRegion } from './regions.ts';
import { createOnce } from './client-tokens.ts';
import type { TransactItem } from './store.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type NetworkView = z.infer<typeof responses.Network>;

export const toNetworkView = ({ networkId, tenantId, projectId, name, cidr, region, createdAt }: NetworkItem): NetworkView => ({
  networkId,
  region,
  tenantId,
  projectId,
  name,
  cidr,
  capacity: capacityOf(cidr),
  createdAt,
});


export async function createNetwork(table: string, tenantId: string, region: string, request: CreateNetworkRequest): Promise<NetworkView> {
  return createOnce(
    { table, tenantId, operation: 'createNetwork', request },
    async (networkId) => toNetworkView(await getNetwork(table, tenantId, networkId)),
    (claim) => insertNetwork(table, tenantId, region, request, claim),
  );
}

async function insertNetwork(table: string, tenantId: string, region: string, request: CreateNetworkRequest, claim: (networkId: string) => TransactItem[]): Promise<NetworkView> {
  const networkId = newId('net');
  const guard = projectGuard(table, tenantId, request.projectId);
  const item: NetworkItem & Record<string, unknown> = {
    ...keys.network(networkId),
    ...nodeAttributes(guard.projectId, 'network', networkId),
    kind: 'network',
    networkId,
    tenantId,
    name: request.name,
    cidr: normalizeCidr(request.cidr),
    region,
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.networksOfTenant(tenantId),
    gsi1sk: networkId,
  };
  await putInProject(table, tenantId, guard, item, claim(networkId));
  return toNetworkView(item);
}

/** A tenant's network; another tenant's is as unknown as one that does not exist. */
export async function getNetwork(table: string, tenantId: string, networkId: string): Promise<NetworkItem> {
  return getTenantItem<NetworkItem>(table, keys.network(networkId), tenantId, 'network', networkId);
}

export async function listNetworks(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<NetworkItem>(table, { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.networksOfTenant(tenantId) }, limit, nextToken);
  return { networks: page.items.map(toNetworkView), nextToken: page.nextToken };
}

/**
 * Deletes a network nothing uses. Its VMs are its users: while any address is held the network is
 * refused with those VMs named. Released slots, memberships and allow rules go first, the network
 * item last (conditionally), so a repeated delete finishes what an interrupted one began.
 */
export async function deleteNetwork(table: string, region: string, tenantId: string, networkId: string): Promise<void> {
  assertHomeRegion(await getNetwork(table, tenantId, networkId), region, `network ${networkId}`);
  const items = await queryAll<{ pk: string; sk: string; kind?: string; state?: string; vmId?: string }>({
    TableName: table,
    KeyConditionExpression: 'pk = :pk',
    ExpressionAttributeValues: { ':pk': keys.network(networkId).pk },
    ConsistentRead: true,
  });
  const users = items.filter((item) => item.kind === 'slot' && item.state === 'active').map((item) => item.vmId!);
  if (users.length > 0) throw new InUseError(`network ${networkId} is in use by vm ${users.sort().join(', vm ')}`);
  const rest = items.filter((item) => item.sk !== keys.network(networkId).sk);
  for (let i = 0; i < rest.length; i += 25) {
    await batchDelete(table, rest.slice(i, i + 25).map(({ pk, sk }) => ({ pk, sk })));
  }
  try {
    // An address taken meanwhile would have needed the network item: its create transaction checks it exists.
    await dynamodb.send(new DeleteCommand({ TableName: table, Key: keys.network(networkId), ConditionExpression: 'attribute_exists(pk)' }));
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}
