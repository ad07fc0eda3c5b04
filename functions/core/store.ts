import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  GetCommand,
  QueryCommand,
  type QueryCommandInput,
  type TransactWriteCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { dynamodb } from '../platform/clients.ts';
import { keys } from './table-keys.ts';
import type { MemberItem, SlotItem } from '#events/records.ts';

/** One item of a TransactWriteItems call. */
export type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** Reads one item, strongly consistent, or undefined. */
export async function getItem<T>(table: string, key: { pk: string; sk: string }): Promise<T | undefined> {
  const { Item } = await dynamodb.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }));
  return Item as T | undefined;
}

/** Keys a BatchGetItem takes at most. */
const BATCH_GET_LIMIT = 100;

/**
 * Reads many items of one table, strongly consistent: one BatchGetItem per hundred keys, keys the
 * table left unprocessed (throttling) asked again after a back-off. Keys with no item are left out;
 * the order is not the keys'.
 */
export async function getItems<T>(table: string, itemKeys: readonly Record<string, unknown>[]): Promise<T[]> {
  const items: T[] = [];
  for (let start = 0; start < itemKeys.length; start += BATCH_GET_LIMIT) {
    let pending: Record<string, unknown>[] | undefined = itemKeys.slice(start, start + BATCH_GET_LIMIT);
    for (let attempt = 0; pending && pending.length > 0; attempt++) {
      if (attempt > 0) await sleep(Math.min(1_000, 25 * 2 ** attempt));
      const answer: BatchGetCommandOutput = await dynamodb.send(new BatchGetCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } }));
      items.push(...((answer.Responses?.[table] ?? []) as T[]));
      pending = answer.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return items;
}

/** Runs a Query to the end, following LastEvaluatedKey. */
export async function queryAll<T>(input: QueryCommandInput): Promise<T[]> {
  const items: T[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await dynamodb.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
    items.push(...((page.Items ?? []) as T[]));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

export interface NetworkPartition {
  slots: SlotItem[];
  members: MemberItem[];
}

/** Every address slot and host membership of a network, strongly consistent. */
export async function readNetworkPartition(table: string, networkId: string): Promise<NetworkPartition> {
  const items = await queryAll<SlotItem | MemberItem>({
    TableName: table,
    KeyConditionExpression: 'pk = :pk',
    ExpressionAttributeValues: { ':pk': keys.network(networkId).pk },
    ConsistentRead: true,
  });
  return {
    slots: items.filter((item): item is SlotItem => item.kind === 'slot'),
    members: items.filter((item): item is MemberItem => item.kind === 'member'),
  };
}

/**
 * A network's host memberships and the named slots only, strongly consistent: what an endpoint
 * change's fan-out needs, at the same cost in a network of five addresses or five thousand.
 */
export async function readNetworkMembers(table: string, networkId: string, ips: readonly string[]): Promise<NetworkPartition> {
  const [members, slots] = await Promise.all([
    membersOf(table, networkId, true),
    Promise.all(ips.map((ip) => getItem<SlotItem>(table, keys.slot(networkId, ip)))),
  ]);
  return { members, slots: slots.filter((slot): slot is SlotItem => slot !== undefined) };
}

/** The hosts of a network, each with how many of its VMs it runs: its partition's member items. */
export function membersOf(table: string, networkId: string, consistent: boolean): Promise<MemberItem[]> {
  return queryAll<MemberItem>({
    TableName: table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :member)',
    ExpressionAttributeValues: { ':pk': keys.network(networkId).pk, ':member': 'MEMBER#' },
    ConsistentRead: consistent,
  });
}

/** Which parts of a cancelled transaction failed, by position, e.g. ['None', 'ConditionalCheckFailed']. */
export function cancellationCodes(error: unknown): string[] | undefined {
  if (!(error instanceof TransactionCanceledException)) return undefined;
  return (error.CancellationReasons ?? []).map((reason) => reason.Code ?? 'None');
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Full-jitter backoff for transaction conflicts. */
export function backoff(attempt: number): Promise<unknown> {
  return sleep(Math.random() * Math.min(1000, 20 * 2 ** attempt));
}
