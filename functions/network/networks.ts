import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import type { CreateNetworkRequest } from '#events/api.ts';
import type { NetworkItem } from '#events/records.ts';
import { capacityOf, normalizeCidr } from './cidr.ts';
import { dynamodb } from '../platform/clients.ts';
import { batchDelete } from '../core/batch-delete.ts';
import { ClientError, InUseError } from '../core/errors.ts';
import { queryPage } from '../core/pagination.ts';
import { backoff, cancellationCodes, queryAll } from '../core/store.ts';
import { indexes, indexKeys, keys } from '../core/table-keys.ts';
import { newId } from '../core/ids.ts';
import { nodeAttributes, projectGuard, projectGuardError } from '../tenancy/projects.ts';
import { getTenantItem } from '../core/access.ts';
import { assertHomeRegion } from '../core/regions.ts';
import { createOnce, throwIfClaimLost } from '../core/client-tokens.ts';
import { quotaCharge, quotaRelease } from '../tenancy/quotas.ts';
import type { TransactItem } from '../core/store.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type NetworkView = z.infer<typeof responses.Network>;

export const toNetworkView = ({ networkId, tenantId, projectId, name, cidr, region, placement, createdAt }: NetworkItem): NetworkView => ({
  networkId,
  region,
  tenantId,
  projectId,
  name,
  cidr,
  capacity: capacityOf(cidr),
  placement: placement ?? 'spread',
  createdAt,
});

export async function createNetwork(table: string, tenantId: string, region: string, request: CreateNetworkRequest): Promise<NetworkView> {
  return createOnce(
    { table, tenantId, operation: 'createNetwork', request },
    async (networkId) => toNetworkView(await getNetwork(table, tenantId, networkId)),
    (claim) => insertNetwork(table, tenantId, region, request, claim),
  );
}

async function insertNetwork(
  table: string,
  tenantId: string,
  region: string,
  request: CreateNetworkRequest,
  claim: (networkId: string) => TransactItem[],
): Promise<NetworkView> {
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
    ...(request.placement === 'pack' ? { placement: 'pack' } : {}),
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.networksOfTenant(tenantId),
    gsi1sk: networkId,
  };
  // Written into its project (the guard) and taken from the tenant's network quota in one transaction.
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const quota = await quotaCharge(table, tenantId, region, { networks: 1 });
    const claimed = claim(networkId);
    try {
      await dynamodb.send(
        new TransactWriteCommand({
          TransactItems: [guard.item, { Put: { TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } }, ...quota.items, ...claimed],
        }),
      );
      return toNetworkView(item);
    } catch (error) {
      const codes = cancellationCodes(error);
      if (!codes) throw error;
      throwIfClaimLost(codes, claimed);
      await quota.refusal(codes, 2);
      if (codes[0] === 'ConditionalCheckFailed') throw await projectGuardError(table, tenantId, guard.projectId);
      // A concurrent create or delete of the tenant's held the quota counter: try again.
      await backoff(attempt);
    }
  }
  throw new ClientError(503, "the tenant's network quota is contended by concurrent requests; retry");
}

const MAX_ATTEMPTS = 20;

/** A tenant's network; another tenant's is as unknown as one that does not exist. */
export async function getNetwork(table: string, tenantId: string, networkId: string): Promise<NetworkItem> {
  return getTenantItem<NetworkItem>(table, keys.network(networkId), tenantId, 'network', networkId);
}

export async function listNetworks(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<NetworkItem>(
    table,
    { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.networksOfTenant(tenantId) },
    limit,
    nextToken,
  );
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
    await batchDelete(
      table,
      rest.slice(i, i + 25).map(({ pk, sk }) => ({ pk, sk })),
    );
  }
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    try {
      // An address taken meanwhile would have needed the network item: its create transaction checks it exists.
      // The quota is given back in the same transaction, so only the delete that removed the item gives it.
      await dynamodb.send(
        new TransactWriteCommand({
          TransactItems: [
            { Delete: { TableName: table, Key: keys.network(networkId), ConditionExpression: 'attribute_exists(pk)' } },
            ...quotaRelease(table, tenantId, region, { networks: 1 }),
          ],
        }),
      );
      return;
    } catch (error) {
      const codes = cancellationCodes(error);
      if (!codes) throw error;
      if (codes[0] === 'ConditionalCheckFailed') return; // already deleted
      await backoff(attempt);
    }
  }
  throw new ClientError(503, `network ${networkId} is contended by concurrent requests; retry`);
}
