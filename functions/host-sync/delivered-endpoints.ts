import type { NetworkChange } from '#events/endpoints.ts';
import type { MetadataItem, SlotItem } from '#events/records.ts';
import { getItems } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';

/** Each slot's delivered version (`networkId ip` → deliveredVersion) as far as it is known. */
export type DeliveredVersions = Map<string, number>;

const slotKey = (networkId: string, ip: string) => `${networkId} ${ip}`;

/**
 * Whether the fast path delivered an endpoint change (that version of the slot, or a later one) to
 * every host that needed it already: the stream's backstop then has nothing to send, and skipping
 * it before the fan-out queue saves the message, its receive and delete, and the fan-out's reads.
 */
export function deliveredAlready(change: NetworkChange, delivered: DeliveredVersions): boolean {
  return change.kind === 'endpoint' && (delivered.get(slotKey(change.networkId, change.entry.ip)) ?? -1) >= change.entry.version;
}

/** The delivered versions the slots of a stream batch show as written: a fast path's mark that came in the same batch as its commit. */
export function deliveredVersionsIn(items: readonly (MetadataItem | undefined)[]): DeliveredVersions {
  const delivered: DeliveredVersions = new Map();
  for (const item of items) {
    if (item?.kind !== 'slot' || item.deliveredVersion === undefined) continue;
    const key = slotKey(item.networkId, item.ip);
    delivered.set(key, Math.max(item.deliveredVersion, delivered.get(key) ?? -1));
  }
  return delivered;
}

/**
 * What the backstop needs to know before it forwards a batch's endpoint changes: their slots'
 * delivered versions, from the batch itself and, for the changes it does not settle, one strongly
 * consistent read of their slots (the fast path usually marked them by the time the stream
 * carries the commit).
 */
export async function readDeliveredVersions(
  table: string,
  changes: readonly NetworkChange[],
  batchItems: readonly (MetadataItem | undefined)[],
): Promise<DeliveredVersions> {
  const delivered = deliveredVersionsIn(batchItems);
  const unsettled = new Map<string, { networkId: string; ip: string }>();
  for (const change of changes)
    if (change.kind === 'endpoint' && !deliveredAlready(change, delivered))
      unsettled.set(slotKey(change.networkId, change.entry.ip), { networkId: change.networkId, ip: change.entry.ip });
  if (unsettled.size === 0) return delivered;
  const slots = await getItems<SlotItem>(
    table,
    [...unsettled.values()].map(({ networkId, ip }) => keys.slot(networkId, ip)),
  );
  for (const [key, version] of deliveredVersionsIn(slots)) delivered.set(key, Math.max(version, delivered.get(key) ?? -1));
  return delivered;
}
