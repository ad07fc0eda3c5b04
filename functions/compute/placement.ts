import type { HostItem, MemberItem } from '#events/records.ts';
import { inRegion } from '../core/regions.ts';
import { indexKeys } from '../core/table-keys.ts';

/*
 * Placement without reading the fleet. Every host that runs VMs sits in one shard of its region's
 * placement index (gsi5: partition `PLACEMENT#<region>#<shard>`, sort key its free capacity,
 * `capacity - vmCount`, kept in the same writes as its VM count). A placement reads the freest
 * hosts with room of two random shards, drops those the rules (and the caller's filter) refuse,
 * and takes the less loaded of two random survivors. What it reads depends on the shard size, not
 * on the fleet's: PER_SHARD hosts of FIRST_SHARDS shards, more only when none of those will do.
 * Pure: the index is read through a ShardReader (placement-index.ts reads DynamoDB).
 */

/** Shards of one region's placement index. Fixed: a host's shard is a hash of its id. */
export const PLACEMENT_SHARDS = 16;
/** Shards a placement reads first, at random. */
export const FIRST_SHARDS = 2;
/** Hosts read from a shard per query: its freest with room (FIRST_SHARDS x PER_SHARD candidates). */
export const PER_SHARD = 8;
/** Index queries a placement makes at most, whatever the fleet: every shard three pages deep. */
export const MAX_INDEX_QUERIES = 3 * PLACEMENT_SHARDS;

/** A host's shard: FNV-1a of its id, so every writer puts it in the same one. */
export function placementShardOf(hostId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < hostId.length; i++) {
    hash ^= hostId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % PLACEMENT_SHARDS;
}

/**
 * Can placement put a VM on the host? Not when its agent registered that it runs none (no QEMU or
 * no root there, or `--runtime none`). A host registered without saying (by an operator through the
 * API, or by an older agent) is taken as able, as it always was.
 */
export const runsVms = (host: Pick<HostItem, 'vmRuntime'>): boolean => host.vmRuntime !== 'none';

/** May placement choose the host? Not one registered with auto-placement off: only VMs and moves that name it go there. */
export const placesAutomatically = (host: Pick<HostItem, 'autoPlacement'>): boolean => host.autoPlacement !== 'off';

/**
 * The attributes that put a host in the placement index, or none for a host placement must keep
 * off whatever its health: one that runs no VMs, one registered with auto-placement off, or one an
 * operator cordoned (it stays out until uncordoned). Hosts that are down or suspect stay in: their
 * health changes every few seconds and lives elsewhere (the liveness table), so placement filters
 * them out of its candidates.
 */
export function placementIndexAttributes(
  host: Pick<HostItem, 'hostId' | 'capacity' | 'vmCount' | 'vmRuntime' | 'cordoned' | 'autoPlacement'>,
  region: string,
): { gsi5pk: string; gsi5sk: number } | undefined {
  if (!runsVms(host) || !placesAutomatically(host) || host.cordoned === true) return undefined;
  return { gsi5pk: indexKeys.placementShard(region, placementShardOf(host.hostId)), gsi5sk: host.capacity - host.vmCount };
}

/** An UpdateExpression's parts. */
export interface UpdateParts {
  set: string[];
  remove: string[];
  names: Record<string, string>;
  values: Record<string, unknown>;
}

/**
 * What an update of a host item (as read: `indexedAt` is its gsi5pk) must add so that the host,
 * as it will be (`host`), sits where it belongs in the placement index; nothing when it already
 * does. Going in, its free capacity is computed from its VM count as the write applies it
 * (`capacity - vmCount`), so a create committing meanwhile cannot make it stale.
 */
export function placementIndexUpdate(
  host: Pick<HostItem, 'hostId' | 'capacity' | 'vmCount' | 'vmRuntime' | 'cordoned' | 'autoPlacement'>,
  indexedAt: string | undefined,
  region: string,
): UpdateParts {
  const shard = placementIndexAttributes(host, region)?.gsi5pk;
  if (shard === indexedAt) return { set: [], remove: [], names: {}, values: {} };
  if (!shard) return { set: [], remove: ['gsi5pk', 'gsi5sk'], names: {}, values: {} };
  return {
    set: ['gsi5pk = :placementShard', 'gsi5sk = #capacity - vmCount'],
    remove: [],
    names: { '#capacity': 'capacity' },
    values: { ':placementShard': shard },
  };
}

/** `SET a, b REMOVE c` from its parts. */
export const updateExpression = ({ set, remove }: Pick<UpdateParts, 'set' | 'remove'>): string =>
  [set.length > 0 ? `SET ${set.join(', ')}` : '', remove.length > 0 ? `REMOVE ${remove.join(', ')}` : ''].filter(Boolean).join(' ');

/** What a placement must respect, whatever the index says. */
export interface PlacementRules {
  region: string;
  /** Hosts not to pick: full ones met in a transaction, those of `spreadFrom`'s VMs, a moving VM's own. */
  exclude: ReadonlySet<string>;
  /** Only hosts that take guests live (a running guest moving live). */
  liveOnly?: boolean;
}

/** Whether the rules let placement send a VM to `host`: it runs VMs, may be chosen, has room, is in the region, not excluded (and takes guests live if asked). */
export function canTake(host: HostItem, rules: PlacementRules): boolean {
  return (
    runsVms(host) &&
    placesAutomatically(host) &&
    host.vmCount < host.capacity &&
    !rules.exclude.has(host.hostId) &&
    inRegion(host, rules.region) &&
    (!rules.liveOnly || host.liveMigration === true)
  );
}

/** The less loaded of two random hosts of `open` (all of which can take the VM). */
export function pickOfTwo(open: readonly HostItem[], random: () => number = Math.random): HostItem | undefined {
  if (open.length === 0) return undefined;
  const a = open[Math.floor(random() * open.length)]!;
  const b = open[Math.floor(random() * open.length)]!;
  const load = (host: HostItem) => host.vmCount / host.capacity;
  return load(a) <= load(b) ? a : b;
}

/**
 * Picks a host with room among `hosts`: of two random hosts with free capacity, the less loaded.
 * Two choices spread load nearly as well as "least loaded" without every concurrent create picking
 * the same host. A host that runs no VMs (`vmRuntime: none`) is never picked. Runtimes are not
 * otherwise weighed: a VM with an image may land on a `process` host, and its view says so
 * (`runtime: process`).
 */
export function chooseHost(hosts: readonly HostItem[], exclude: ReadonlySet<string> = new Set(), random: () => number = Math.random): HostItem | undefined {
  return pickOfTwo(
    hosts.filter((host) => runsVms(host) && placesAutomatically(host) && host.vmCount < host.capacity && !exclude.has(host.hostId)),
    random,
  );
}

/** Where a shard's query stopped (DynamoDB's LastEvaluatedKey): the next page starts after it. */
export type ShardCursor = Record<string, unknown>;

/** Reads one page of one shard of the region's index: its freest hosts with room, at most `limit`, after `after`. */
export type ShardReader = (shard: number, limit: number, after?: ShardCursor) => Promise<{ hosts: HostItem[]; next?: ShardCursor }>;

/**
 * What the caller adds to the rules, applied to the sampled candidates before the choice of two
 * (e.g. hosts whose agent is alive, not cordoned): `accept`, one host at a time (sync or async),
 * and/or `acceptAll`, the candidates at once (one batched read for all of them). A candidate must
 * pass both.
 */
export interface HostAcceptance {
  accept?: (host: HostItem) => boolean | Promise<boolean>;
  acceptAll?: (hosts: readonly HostItem[]) => readonly HostItem[] | Promise<readonly HostItem[]>;
}

export interface PlacementOutcome {
  host?: HostItem;
  /** Index queries made: FIRST_SHARDS when the first candidates did, at most MAX_INDEX_QUERIES. */
  queries: number;
}

/**
 * Picks a host from the placement index. First the freest PER_SHARD hosts with room of
 * FIRST_SHARDS random shards (read side by side); the rules and `acceptance` drop what will not
 * do, and of what is left the less loaded of two random hosts is the answer. Only if nothing is
 * left: every other shard, then the next pages of the shards that had more, round after round,
 * MAX_INDEX_QUERIES queries at most. Undefined: no host found will take the VM.
 */
export async function placeFromIndex(
  read: ShardReader,
  rules: PlacementRules,
  acceptance: HostAcceptance = {},
  random: () => number = Math.random,
): Promise<PlacementOutcome> {
  const order = shuffled(
    Array.from({ length: PLACEMENT_SHARDS }, (_, shard) => shard),
    random,
  );
  let round: { shard: number; after?: ShardCursor }[] = order.slice(0, FIRST_SHARDS).map((shard) => ({ shard }));
  let unread = order.slice(FIRST_SHARDS);
  /** Next pages of shards read so far, not read yet. */
  const deeper: { shard: number; after: ShardCursor }[] = [];
  const seen = new Set<string>();
  let queries = 0;
  while (round.length > 0 && queries < MAX_INDEX_QUERIES) {
    round = round.slice(0, MAX_INDEX_QUERIES - queries);
    queries += round.length;
    const pages = await Promise.all(round.map(async ({ shard, after }) => ({ shard, page: await read(shard, PER_SHARD, after) })));
    const candidates: HostItem[] = [];
    for (const { shard, page } of pages) {
      for (const host of page.hosts) {
        if (seen.has(host.hostId)) continue;
        seen.add(host.hostId);
        candidates.push(host);
      }
      if (page.next && page.hosts.length > 0) deeper.push({ shard, after: page.next });
    }
    const open = await accepted(
      candidates.filter((host) => canTake(host, rules)),
      acceptance,
    );
    if (open.length > 0) return { host: pickOfTwo(open, random), queries };
    // None of these will do: the shards not read yet, then deeper into those that had more.
    if (unread.length > 0) {
      round = unread.map((shard) => ({ shard }));
      unread = [];
    } else {
      round = deeper.splice(0);
    }
  }
  return { queries };
}

/** Of a packed network's hosts, how many placement reads at most (those running most of its VMs): past them, the index decides. */
export const PACKED_HOSTS_READ = 16;

/** A packed network's hosts, each with how many of its VMs it runs (one query of the network's partition). */
export type MemberReader = () => Promise<readonly Pick<MemberItem, 'hostId' | 'vmCount'>[]>;
/** Host items by id (one batched read); ids with no host are left out. */
export type HostReader = (hostIds: readonly string[]) => Promise<readonly HostItem[]>;

/**
 * A host for a VM of a packed network (NetworkPlacement `pack`): of the hosts already running the
 * network's VMs, the one running most of them that the rules and `acceptance` let take it (the
 * less loaded on a tie), so the network spans as few hosts as their room allows. Undefined: none
 * of them will do (the caller goes to the index, which spreads as for any VM). Reads at most
 * PACKED_HOSTS_READ hosts, whatever the network's size.
 */
export async function placePacked(
  readMembers: MemberReader,
  readHosts: HostReader,
  rules: PlacementRules,
  acceptance: HostAcceptance = {},
): Promise<HostItem | undefined> {
  const members = (await readMembers())
    .filter((member) => member.vmCount > 0 && !rules.exclude.has(member.hostId))
    .sort((a, b) => b.vmCount - a.vmCount || a.hostId.localeCompare(b.hostId))
    .slice(0, PACKED_HOSTS_READ);
  if (members.length === 0) return undefined;
  const ofNetwork = new Map(members.map((member) => [member.hostId, member.vmCount]));
  const open = await accepted(
    (await readHosts([...ofNetwork.keys()])).filter((host) => canTake(host, rules)),
    acceptance,
  );
  const load = (host: HostItem) => host.vmCount / host.capacity;
  return [...open].sort((a, b) => ofNetwork.get(b.hostId)! - ofNetwork.get(a.hostId)! || load(a) - load(b))[0];
}

async function accepted(hosts: readonly HostItem[], acceptance: HostAcceptance): Promise<readonly HostItem[]> {
  let open = hosts;
  if (open.length > 0 && acceptance.acceptAll) open = await acceptance.acceptAll(open);
  if (open.length > 0 && acceptance.accept) {
    const verdicts = await Promise.all(open.map((host) => acceptance.accept!(host)));
    open = open.filter((_, i) => verdicts[i]);
  }
  return open;
}

function shuffled<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
