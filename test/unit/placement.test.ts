import { describe, expect, it } from 'vitest';
import type { HostItem } from '../../events/records.ts';
import {
  FIRST_SHARDS,
  type HostReader,
  MAX_INDEX_QUERIES,
  type MemberReader,
  PACKED_HOSTS_READ,
  PER_SHARD,
  PLACEMENT_SHARDS,
  placeFromIndex,
  placePacked,
  placementIndexAttributes,
  placementIndexUpdate,
  placementShardOf,
  updateExpression,
  type PlacementRules,
  type ShardReader,
} from '#functions/compute/placement.ts';
import { hostCountDelta } from '#functions/compute/vm-counts.ts';

const REGION = 'us-east-1';

const host = (hostId: string, vmCount: number, capacity: number, more: Partial<HostItem> = {}): HostItem => ({
  kind: 'host',
  hostId,
  address: '192.0.2.1',
  region: REGION,
  capacity,
  vmCount,
  queueUrl: 'q',
  createdAt: '',
  ...more,
});

/**
 * The placement index as DynamoDB serves it: each indexed host in its region's shard, a query
 * answering a shard's hosts with free capacity above 0, freest first, `limit` at a time, and
 * where it stopped. Counts its queries.
 */
function index(hosts: readonly HostItem[]) {
  const shards = new Map<string, HostItem[]>();
  for (const item of hosts) {
    const attributes = placementIndexAttributes(item, item.region ?? REGION);
    if (!attributes || attributes.gsi5sk <= 0) continue;
    const members = shards.get(attributes.gsi5pk) ?? [];
    members.push(item);
    shards.set(attributes.gsi5pk, members);
  }
  for (const members of shards.values()) members.sort((a, b) => b.capacity - b.vmCount - (a.capacity - a.vmCount) || a.hostId.localeCompare(b.hostId));
  const reads: number[] = [];
  const read: (region: string) => ShardReader = (region) => async (shard, limit, after) => {
    reads.push(shard);
    const members = shards.get(`PLACEMENT#${region}#${shard}`) ?? [];
    const start = after ? (after.position as number) : 0;
    const page = members.slice(start, start + limit);
    return { hosts: page, ...(start + limit < members.length ? { next: { position: start + limit } } : {}) };
  };
  return { read, reads };
}

const fleet = (count: number, load: (i: number) => number = () => 0, more: (i: number) => Partial<HostItem> = () => ({})) =>
  Array.from({ length: count }, (_, i) => host(`h-${i}`, load(i), 32, more(i)));

/** A deterministic stand-in for Math.random (mulberry32). */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const rules = (more: Partial<PlacementRules> = {}): PlacementRules => ({ region: REGION, exclude: new Set(), ...more });

describe('the placement index', () => {
  it('puts a host that runs VMs in one of its region’s shards, by free capacity; a host that runs none stays out', () => {
    expect(placementIndexAttributes(host('h-1', 3, 10, { vmRuntime: 'qemu' }), REGION)).toEqual({
      gsi5pk: `PLACEMENT#${REGION}#${placementShardOf('h-1')}`,
      gsi5sk: 7,
    });
    expect(placementIndexAttributes(host('h-1', 0, 10), 'eu-west-1')?.gsi5pk).toBe(`PLACEMENT#eu-west-1#${placementShardOf('h-1')}`);
    expect(placementIndexAttributes(host('h-2', 0, 10, { vmRuntime: 'none' }), REGION)).toBeUndefined();
  });

  it('keeps a cordoned host and one with auto-placement off out, and says what an update must do to put a host where it belongs', () => {
    const h = host('h-1', 3, 10, { vmRuntime: 'qemu' });
    const shard = `PLACEMENT#${REGION}#${placementShardOf('h-1')}`;
    expect(placementIndexAttributes({ ...h, cordoned: true }, REGION)).toBeUndefined();
    expect(placementIndexAttributes({ ...h, autoPlacement: 'off' }, REGION)).toBeUndefined();
    expect(placementIndexAttributes({ ...h, autoPlacement: 'on' }, REGION)?.gsi5pk).toBe(shard);
    // Not indexed yet (registered before the index): in, its free capacity from its count as the write applies it.
    expect(placementIndexUpdate(h, undefined, REGION)).toEqual({
      set: ['gsi5pk = :placementShard', 'gsi5sk = #capacity - vmCount'],
      remove: [],
      names: { '#capacity': 'capacity' },
      values: { ':placementShard': shard },
    });
    expect(placementIndexUpdate(h, shard, REGION)).toEqual({ set: [], remove: [], names: {}, values: {} });
    for (const out of [
      { ...h, cordoned: true },
      { ...h, vmRuntime: 'none' as const },
      { ...h, autoPlacement: 'off' as const },
    ])
      expect(placementIndexUpdate(out, shard, REGION)).toEqual({ set: [], remove: ['gsi5pk', 'gsi5sk'], names: {}, values: {} });
    expect(updateExpression({ set: ['a = :a', 'b = :b'], remove: ['c'] })).toBe('SET a = :a, b = :b REMOVE c');
    expect(updateExpression({ set: [], remove: ['c'] })).toBe('REMOVE c');
  });

  it('spreads hosts over every shard about evenly', () => {
    const counts = new Array(PLACEMENT_SHARDS).fill(0);
    for (let i = 0; i < 16_000; i++) counts[placementShardOf(`host-${i}`)]++;
    for (const count of counts) expect(count).toBeGreaterThan(800);
    expect(placementShardOf('host-1')).toBe(placementShardOf('host-1'));
  });

  it('moves a host’s free capacity with its VM count, in the same write', () => {
    expect(hostCountDelta('T', 'h-1', 1).Update).toMatchObject({
      UpdateExpression: 'ADD vmCount :delta, gsi5sk :free',
      ExpressionAttributeValues: { ':delta': 1, ':free': -1 },
    });
    expect(hostCountDelta('T', 'h-1', -1).Update).toMatchObject({
      UpdateExpression: 'ADD vmCount :delta, gsi5sk :free',
      ExpressionAttributeValues: { ':delta': -1, ':free': 1 },
    });
  });
});

describe('placement from the index', () => {
  it('reads two shards whatever the fleet: the same at 100 and at 10,000 hosts', async () => {
    for (const size of [100, 10_000]) {
      const { read } = index(fleet(size, (i) => i % 33));
      for (let i = 0; i < 50; i++) {
        const outcome = await placeFromIndex(read(REGION), rules());
        expect(outcome.host).toBeDefined();
        expect(outcome.queries).toBe(FIRST_SHARDS);
      }
    }
  });

  it('never picks a host that is full, runs no VMs, takes only VMs that name it, is excluded, in another region, or refused by the filter', async () => {
    const hosts = [
      ...fleet(40, () => 32),
      ...fleet(
        40,
        () => 0,
        () => ({ vmRuntime: 'none' }),
      ).map((h) => ({ ...h, hostId: `none-${h.hostId}` })),
      ...fleet(
        40,
        () => 0,
        () => ({ autoPlacement: 'off' }),
      ).map((h) => ({ ...h, hostId: `named-only-${h.hostId}` })),
      ...fleet(40).map((h) => ({ ...h, hostId: `excluded-${h.hostId}` })),
      ...fleet(
        40,
        () => 0,
        () => ({ region: 'eu-west-1' }),
      ).map((h) => ({ ...h, hostId: `eu-${h.hostId}` })),
      ...fleet(40).map((h) => ({ ...h, hostId: `down-${h.hostId}` })),
      ...fleet(40, () => 20).map((h) => ({ ...h, hostId: `ok-${h.hostId}` })),
    ];
    const { read } = index(hosts);
    const exclude = new Set(hosts.filter((h) => h.hostId.startsWith('excluded-')).map((h) => h.hostId));
    for (let i = 0; i < 100; i++) {
      const { host: picked } = await placeFromIndex(read(REGION), rules({ exclude }), { accept: (candidate) => !candidate.hostId.startsWith('down-') });
      expect(picked?.hostId).toMatch(/^ok-/);
    }
  });

  it('takes only hosts that move guests live when the guest moves live', async () => {
    const hosts = [
      ...fleet(50),
      ...fleet(
        50,
        () => 16,
        () => ({ vmRuntime: 'qemu', liveMigration: true }),
      ).map((h) => ({ ...h, hostId: `live-${h.hostId}` })),
    ];
    const { read } = index(hosts);
    for (let i = 0; i < 50; i++) expect((await placeFromIndex(read(REGION), rules({ liveOnly: true }))).host?.hostId).toMatch(/^live-/);
  });

  it('applies an async filter and a batch filter to the sampled candidates before the choice of two', async () => {
    const { read } = index(fleet(200));
    const random = seeded(7);
    for (let i = 0; i < 20; i++) {
      const batches: number[] = [];
      const outcome = await placeFromIndex(
        read(REGION),
        rules(),
        {
          acceptAll: async (candidates) => {
            batches.push(candidates.length);
            return candidates.filter((candidate) => Number(candidate.hostId.slice(2)) % 2 === 0);
          },
          accept: async (candidate) => Number(candidate.hostId.slice(2)) % 4 === 0,
        },
        random,
      );
      expect(Number(outcome.host!.hostId.slice(2)) % 4).toBe(0);
      // The batch filter sees every candidate sampled at once: first two shards' worth.
      expect(batches[0]).toBe(FIRST_SHARDS * PER_SHARD);
    }
  });

  it('reads the other shards when no candidate of the first two will do, then deeper pages, and stops at its bound', async () => {
    // A small fleet: most shards are empty.
    const small = index(fleet(3));
    for (let i = 0; i < 20; i++) {
      const outcome = await placeFromIndex(small.read(REGION), rules());
      expect(outcome.host).toBeDefined();
      expect(outcome.queries).toBeLessThanOrEqual(PLACEMENT_SHARDS);
    }
    // Every shard's freest hosts are down (idle, so at the top): placement reads past them.
    const crowded = index([...fleet(16 * 12).map((h) => ({ ...h, hostId: `down-${h.hostId}` })), ...fleet(400, () => 31)]);
    const alive = (candidate: HostItem) => !candidate.hostId.startsWith('down-');
    const found = await placeFromIndex(crowded.read(REGION), rules(), { accept: alive });
    expect(found.host && alive(found.host)).toBe(true);
    expect(found.queries).toBeLessThanOrEqual(MAX_INDEX_QUERIES);
    // Nobody will do: it gives up after its bound, not after reading the fleet.
    const none = index(fleet(10_000));
    const refused = await placeFromIndex(none.read(REGION), rules(), { accept: () => false });
    expect(refused).toEqual({ queries: MAX_INDEX_QUERIES });
    expect(none.reads).toHaveLength(MAX_INDEX_QUERIES);
  });

  it('answers nothing when the region has no host with room', async () => {
    const { read } = index(fleet(50, () => 32));
    expect((await placeFromIndex(read(REGION), rules())).host).toBeUndefined();
    expect((await placeFromIndex(read('eu-west-1'), rules({ region: 'eu-west-1' }))).host).toBeUndefined();
  });

  it('spreads concurrent placements and prefers the less loaded', async () => {
    const { read } = index(fleet(1000, (i) => (i % 2 === 0 ? 0 : 28)));
    const picks = await Promise.all(Array.from({ length: 200 }, () => placeFromIndex(read(REGION), rules())));
    const ids = picks.map((outcome) => outcome.host!);
    expect(new Set(ids.map((picked) => picked.hostId)).size).toBeGreaterThan(50);
    expect(ids.filter((picked) => picked.vmCount === 0).length).toBeGreaterThan(150);
  });
});

describe('placement of a packed network’s VM', () => {
  /** The network's hosts and how many of its VMs each runs; counts the host reads. */
  function network(hosts: readonly HostItem[], vmsOfNetwork: Record<string, number>) {
    const byId = new Map(hosts.map((item) => [item.hostId, item]));
    const hostReads: string[][] = [];
    const readMembers: MemberReader = async () => Object.entries(vmsOfNetwork).map(([hostId, vmCount]) => ({ hostId, vmCount }));
    const readHosts: HostReader = async (ids) => {
      hostReads.push([...ids]);
      return ids.flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));
    };
    return { readMembers, readHosts, hostReads };
  }

  it('goes to the host running most of the network’s VMs, the less loaded on a tie', async () => {
    const { readMembers, readHosts } = network([host('a', 10, 32), host('b', 3, 32), host('c', 20, 32), host('d', 1, 32)], { a: 2, b: 5, c: 5, d: 1 });
    expect((await placePacked(readMembers, readHosts, rules()))?.hostId).toBe('b');
  });

  it('never a host the rules or the filter refuse: full, excluded, cordoned, running no VMs, not live, another region, unhealthy', async () => {
    const hosts = [
      host('full', 32, 32),
      host('excluded', 0, 32),
      host('cordoned', 0, 32, { cordoned: true }),
      host('none', 0, 32, { vmRuntime: 'none' }),
      host('manual', 0, 32, { autoPlacement: 'off' }),
      host('elsewhere', 0, 32, { region: 'eu-west-1' }),
      host('down', 0, 32, { liveMigration: true }),
      host('open', 31, 32),
    ];
    const { readMembers, readHosts } = network(hosts, { full: 9, excluded: 9, cordoned: 9, none: 9, manual: 9, elsewhere: 9, down: 9, open: 1 });
    const acceptance = {
      acceptAll: (candidates: readonly HostItem[]) => candidates.filter((candidate) => candidate.hostId !== 'down' && candidate.cordoned !== true),
    };
    expect((await placePacked(readMembers, readHosts, rules({ exclude: new Set(['excluded']) }), acceptance))?.hostId).toBe('open');
    // Moving live: only hosts that take guests live, and of those only the unhealthy one is left.
    expect(await placePacked(readMembers, readHosts, rules({ exclude: new Set(['excluded']), liveOnly: true }), acceptance)).toBeUndefined();
  });

  it('answers nothing for a network on no host yet, or only on hosts that will not do (the index decides then)', async () => {
    const empty = network([host('a', 0, 32)], {});
    expect(await placePacked(empty.readMembers, empty.readHosts, rules())).toBeUndefined();
    expect(empty.hostReads).toEqual([]);
    const gone = network([host('a', 32, 32)], { a: 4, b: 0, vanished: 2 });
    expect(await placePacked(gone.readMembers, gone.readHosts, rules())).toBeUndefined();
    // A host whose last VM of the network left is not one of its hosts any more.
    expect(gone.hostReads).toEqual([['a', 'vanished']]);
  });

  it('reads at most PACKED_HOSTS_READ hosts, those running most of the network, however many it spans', async () => {
    const hosts = Array.from({ length: 500 }, (_, i) => host(`h-${String(i).padStart(3, '0')}`, 0, 32));
    const { readMembers, readHosts, hostReads } = network(hosts, Object.fromEntries(hosts.map((item, i) => [item.hostId, 1 + (i % 7)])));
    const picked = await placePacked(readMembers, readHosts, rules());
    expect(hostReads).toHaveLength(1);
    expect(hostReads[0]).toHaveLength(PACKED_HOSTS_READ);
    expect(picked?.hostId).toBe('h-006');
  });
});
