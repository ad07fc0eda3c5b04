import { randomBytes } from 'node:crypto';
import { DeleteCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { NetworkItem, SlotItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { logger } from '../platform/logger.ts';
import { cancellationCodes, getItem, type TransactItem } from '../core/store.ts';
import { indexes, indexKeys, keys } from '../core/table-keys.ts';
import { capacityOf, freshAddress } from './cidr.ts';

/*
 * Address allocation that reads nothing in proportion to the network. A network hands out its
 * addresses fresh, in order, from a counter (its cursor item, `handedOut`): one conditional
 * increment reserves the next, so concurrent creates never race for one. Once every address was
 * handed out, a create takes a free one from the network's free list (gsi2, `FREE#NET#<id>`, in a
 * random order): slots released by deletes, which keep their version, so the address is reused
 * under a higher one (agents never mistake the new VM for the old), and addresses a create
 * reserved but gave back unused (`returned`). Whatever the source, the slot is written in the
 * create's transaction on a condition (no slot yet, or released at the version read), so two VMs
 * never hold one address, whatever the cursor or the free list said.
 */

/** Where an address for a new VM comes from, and so how its slot is written. */
export type AddressChoice =
  /** Reserved from the cursor (the `handedOut`-th address handed out): no slot yet. Given back if the create does not use it. */
  | { kind: 'fresh'; ip: string; handedOut: number }
  /** A released slot, reused under its next version. */
  | { kind: 'released'; ip: string; version: number }
  /** Given back unused by a create that failed: no slot yet; its free-list item goes when it is taken. */
  | { kind: 'returned'; ip: string };

/** Free-list entries read per create: a few, so that concurrent creates rarely pick the same one. */
const FREE_LIST_READ = 8;

/** Where an entry sits in the free list: at random, so each read starts somewhere else. */
export const freeListEntry = (networkId: string) => ({ gsi2pk: indexKeys.freeAddresses(networkId), gsi2sk: randomBytes(4).toString('hex') });

interface ReturnedAddressItem {
  kind: 'returned-address';
  networkId: string;
  ip: string;
}

/**
 * An address for a new VM of `network`: the next fresh one while there are any, else one from
 * the free list, else undefined (the network is full).
 */
export async function chooseAddress(table: string, network: Pick<NetworkItem, 'networkId' | 'cidr'>, random = Math.random): Promise<AddressChoice | undefined> {
  const fresh = await reserveFresh(table, network);
  if (fresh) return fresh;
  const free = await readFreeList(table, network.networkId);
  return free.length > 0 ? free[Math.floor(random() * free.length)] : undefined;
}

/** Reserves the network's next never-used address: one conditional increment of its cursor; undefined once all were handed out. */
async function reserveFresh(table: string, network: Pick<NetworkItem, 'networkId' | 'cidr'>): Promise<AddressChoice | undefined> {
  try {
    const { Attributes } = await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.addressCursor(network.networkId),
        UpdateExpression: 'SET kind = :kind, networkId = :net ADD handedOut :one',
        ConditionExpression: 'attribute_not_exists(handedOut) OR handedOut < :capacity',
        ExpressionAttributeValues: { ':kind': 'address-cursor', ':net': network.networkId, ':one': 1, ':capacity': capacityOf(network.cidr) },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const handedOut = Attributes?.handedOut as number;
    const ip = freshAddress(network.cidr, handedOut);
    return ip ? { kind: 'fresh', ip, handedOut } : undefined;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return undefined;
    throw error;
  }
}

/** A few entries of the network's free list, from a random point (eventually consistent: one taken meanwhile fails its condition). */
async function readFreeList(table: string, networkId: string): Promise<AddressChoice[]> {
  const page = (start?: string) =>
    dynamodb.send(
      new QueryCommand({
        TableName: table,
        IndexName: indexes.gsi2,
        KeyConditionExpression: `gsi2pk = :pk${start ? ' AND gsi2sk >= :start' : ''}`,
        ExpressionAttributeValues: { ':pk': indexKeys.freeAddresses(networkId), ...(start ? { ':start': start } : {}) },
        Limit: FREE_LIST_READ,
      }),
    );
  let items = (await page(freeListEntry(networkId).gsi2sk)).Items ?? [];
  // Past the last entry: wrap around to the first.
  if (items.length === 0) items = (await page()).Items ?? [];
  return items.flatMap((item): AddressChoice[] => {
    if (item.kind === 'returned-address') return [{ kind: 'returned', ip: (item as ReturnedAddressItem).ip }];
    const slot = item as SlotItem;
    return slot.kind === 'slot' && slot.state === 'released' ? [{ kind: 'released', ip: slot.ip, version: slot.version }] : [];
  });
}

/** The slot's version once `choice` is taken: one more than a released slot's, else the first. */
export const versionFor = (choice: AddressChoice): number => (choice.kind === 'released' ? choice.version + 1 : 1);

/**
 * The writes that take `choice` in a create's transaction: the slot `slot` (first, on its
 * condition), and for a returned address the removal of its free-list item (`release`, on the
 * condition that it is still there: of two creates that read it, one takes it).
 */
export function takeAddress(
  table: string,
  networkId: string,
  choice: AddressChoice,
  slot: Record<string, unknown>,
): { slot: TransactItem; release?: TransactItem } {
  if (choice.kind === 'released') {
    return {
      slot: {
        Put: {
          TableName: table,
          Item: slot,
          ConditionExpression: '#state = :released AND version = :previous',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':released': 'released', ':previous': choice.version },
        },
      },
    };
  }
  return {
    slot: { Put: { TableName: table, Item: slot, ConditionExpression: 'attribute_not_exists(pk)' } },
    ...(choice.kind === 'returned'
      ? { release: { Delete: { TableName: table, Key: keys.returnedAddress(networkId, choice.ip), ConditionExpression: 'attribute_exists(pk)' } } }
      : {}),
  };
}

/**
 * What to try after a create's transaction found `choice` taken: its slot's condition failed
 * (`slotTaken`), or its free-list item's. A released slot or returned address: another create
 * took it, so choose again (undefined); a returned address whose slot exists after all (taken by
 * a create of an older version, which drew addresses at random) leaves the free list. A fresh
 * address whose slot exists: it was allocated before the cursor existed; if that slot is released
 * now, it is taken as such (and put on the free list, where releases before the cursor are not),
 * else choose again.
 */
export async function afterAddressTaken(table: string, networkId: string, choice: AddressChoice, slotTaken: boolean): Promise<AddressChoice | undefined> {
  if (choice.kind === 'returned' && slotTaken) {
    await dynamodb
      .send(new DeleteCommand({ TableName: table, Key: keys.returnedAddress(networkId, choice.ip) }))
      .catch((error: unknown) => logger.warn('a returned address held by a slot stays on the free list', { networkId, ip: choice.ip, error: error as Error }));
  }
  if (choice.kind !== 'fresh' || !slotTaken) return undefined;
  const slot = await getItem<SlotItem & { gsi2pk?: string }>(table, keys.slot(networkId, choice.ip));
  if (slot?.state !== 'released') return undefined;
  if (!slot.gsi2pk) {
    try {
      await dynamodb.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.slot(networkId, choice.ip),
          UpdateExpression: 'SET gsi2pk = :pk, gsi2sk = :position',
          ConditionExpression: '#state = :released AND version = :version',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ...positionValues(networkId), ':released': 'released', ':version': slot.version },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      return undefined;
    }
  }
  return { kind: 'released', ip: slot.ip, version: slot.version };
}

const positionValues = (networkId: string) => {
  const { gsi2pk, gsi2sk } = freeListEntry(networkId);
  return { ':pk': gsi2pk, ':position': gsi2sk };
};

/**
 * Gives back a fresh address a create reserved and did not use (it failed: quota, host, a lost
 * token race...). The cursor goes back one if no other create reserved after it; else the address
 * goes on the free list as returned, on the conditions that the network still exists and that no
 * slot holds the address. Best effort: an address that cannot be given back (AWS unreachable, the
 * function gone) is never handed out, never handed out twice.
 */
export async function giveBack(table: string, networkId: string, { ip, handedOut }: Extract<AddressChoice, { kind: 'fresh' }>): Promise<void> {
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.addressCursor(networkId),
        UpdateExpression: 'ADD handedOut :back',
        ConditionExpression: 'handedOut = :mine',
        ExpressionAttributeValues: { ':back': -1, ':mine': handedOut },
      }),
    );
    return;
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) return logGiveBackFailure(networkId, ip, error);
  }
  const item: ReturnedAddressItem & Record<string, unknown> = {
    ...keys.returnedAddress(networkId, ip),
    kind: 'returned-address',
    networkId,
    ip,
    ...freeListEntry(networkId),
  };
  try {
    await dynamodb.send(
      new TransactWriteCommand({
        TransactItems: [
          { ConditionCheck: { TableName: table, Key: keys.network(networkId), ConditionExpression: 'attribute_exists(pk)' } },
          { ConditionCheck: { TableName: table, Key: keys.slot(networkId, ip), ConditionExpression: 'attribute_not_exists(pk)' } },
          { Put: { TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } },
        ],
      }),
    );
  } catch (error) {
    // The network went, or a slot holds the address after all: nothing to give back.
    if (!cancellationCodes(error)) logGiveBackFailure(networkId, ip, error);
  }
}

function logGiveBackFailure(networkId: string, ip: string, error: unknown) {
  logger.warn('an unused address could not be given back: it stays unused', { networkId, ip, error: error as Error });
}
