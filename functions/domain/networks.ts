import { randomBytes } from 'node:crypto';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import type { CreateNetworkRequest } from '#events/api.ts';
import type { NetworkItem } from '#events/records.ts';
import { dynamodb } from '../commons/clients.ts';
import { capacityOf, normalizeCidr } from './cidr.ts';
import { NotFoundError } from './errors.ts';
import { queryPage } from './pagination.ts';
import { getItem } from './store.ts';
import { indexes, indexKeys, keys } from './table-keys.ts';

export interface NetworkView {
  networkId: string;
  tenantId: string;
  name: string;
  cidr: string;
  /** Addresses VMs can get: the CIDR less network, gateway and broadcast addresses. */
  capacity: number;
  createdAt: string;
}

export const toNetworkView = ({ networkId, tenantId, name, cidr, createdAt }: NetworkItem): NetworkView => ({
  networkId,
  tenantId,
  name,
  cidr,
  capacity: capacityOf(cidr),
  createdAt,
});

export const newId = (prefix: string) => `${prefix}-${randomBytes(6).toString('hex')}`;

export async function createNetwork(table: string, tenantId: string, request: CreateNetworkRequest): Promise<NetworkView> {
  const networkId = newId('net');
  const item: NetworkItem & Record<string, unknown> = {
    ...keys.network(networkId),
    kind: 'network',
    networkId,
    tenantId,
    name: request.name,
    cidr: normalizeCidr(request.cidr),
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.networksOfTenant(tenantId),
    gsi1sk: networkId,
  };
  await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  return toNetworkView(item);
}

/** A tenant's network; another tenant's is as unknown as one that does not exist. */
export async function getNetwork(table: string, tenantId: string, networkId: string): Promise<NetworkItem> {
  const network = await getItem<NetworkItem>(table, keys.network(networkId));
  if (!network || network.tenantId !== tenantId) throw new NotFoundError('network', networkId);
  return network;
}

export async function listNetworks(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<NetworkItem>(table, { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.networksOfTenant(tenantId) }, limit, nextToken);
  return { networks: page.items.map(toNetworkView), nextToken: page.nextToken };
}
