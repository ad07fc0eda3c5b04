import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { dynamodb } from '../platform/clients.ts';
import { NotFoundError } from '../core/errors.ts';
import { assertHomeRegion } from '../core/regions.ts';
import { getNetwork } from './networks.ts';
import { getItem, queryAll } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type AllowedSourceView = z.infer<typeof responses.AllowedSource>;

interface AllowedSourceItem extends AllowedSourceView {
  kind: 'allowed-source';
  tenantId: string;
}

/** Lets VMs of one of the tenant's networks connect to VMs of another. Allowing twice is allowing once. */
export async function allowSource(table: string, region: string, tenantId: string, networkId: string, sourceNetworkId: string): Promise<AllowedSourceView> {
  const [network] = await Promise.all([getNetwork(table, tenantId, networkId), getNetwork(table, tenantId, sourceNetworkId)]);
  assertHomeRegion(network, region, `network ${networkId}`);
  const item: AllowedSourceItem & Record<string, unknown> = {
    ...keys.allowedSource(networkId, sourceNetworkId),
    kind: 'allowed-source',
    tenantId,
    networkId,
    sourceNetworkId,
    createdAt: new Date().toISOString(),
  };
  try {
    await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    return toView(item);
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    return toView((await getItem<AllowedSourceItem>(table, keys.allowedSource(networkId, sourceNetworkId)))!);
  }
}

export async function disallowSource(table: string, region: string, tenantId: string, networkId: string, sourceNetworkId: string): Promise<void> {
  assertHomeRegion(await getNetwork(table, tenantId, networkId), region, `network ${networkId}`);
  try {
    await dynamodb.send(
      new DeleteCommand({
        TableName: table,
        Key: keys.allowedSource(networkId, sourceNetworkId),
        ConditionExpression: 'tenantId = :tenant',
        ExpressionAttributeValues: { ':tenant': tenantId },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('allowed source', sourceNetworkId);
    throw error;
  }
}

export async function listAllowedSources(table: string, tenantId: string, networkId: string): Promise<{ allowedSources: AllowedSourceView[] }> {
  await getNetwork(table, tenantId, networkId);
  return { allowedSources: (await allowedSourceItems(table, networkId)).map(toView) };
}

const allowedSourceItems = (table: string, networkId: string) =>
  queryAll<AllowedSourceItem>({
    TableName: table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :allow)',
    ExpressionAttributeValues: { ':pk': keys.network(networkId).pk, ':allow': 'ALLOW#' },
  });

/** The networks whose VMs may open pairs to VMs of `networkId` (besides its own). */
export async function allowedSourceNetworks(table: string, networkId: string): Promise<string[]> {
  return (await allowedSourceItems(table, networkId)).map((item) => item.sourceNetworkId);
}

/** Whether VMs of `sourceNetworkId` may connect to VMs of `networkId`: same network, or a rule says so. */
export async function isAllowed(table: string, networkId: string, sourceNetworkId: string): Promise<boolean> {
  if (networkId === sourceNetworkId) return true;
  return (await getItem(table, keys.allowedSource(networkId, sourceNetworkId))) !== undefined;
}

const toView = ({ networkId, sourceNetworkId, createdAt }: AllowedSourceView): AllowedSourceView => ({ networkId, sourceNetworkId, createdAt });
