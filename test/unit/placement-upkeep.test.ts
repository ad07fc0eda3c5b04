import { describe, expect, it } from 'vitest';
import type { IndexedHost } from '#functions/compute/hosts.ts';
import type { Liveness } from '#functions/compute/host-health.ts';
import { placementIndexChanges } from '#functions/compute/placement-upkeep.ts';
import { placementShardOf } from '#functions/compute/placement.ts';
import { indexKeys } from '#functions/core/table-keys.ts';

const now = Date.parse('2026-12-04T09:00:00Z');
const host = (hostId: string, more: Partial<IndexedHost> = {}): IndexedHost =>
  ({
    hostId,
    address: '198.51.100.1',
    capacity: 16,
    vmCount: 2,
    queueUrl: 'q',
    createdAt: '2026-12-01T00:00:00Z',
    region: 'us-east-1',
    ...more,
  }) as IndexedHost;
const indexed = (hostId: string, more: Partial<IndexedHost> = {}) =>
  host(hostId, { gsi5pk: indexKeys.placementShard('us-east-1', placementShardOf(hostId)), ...more });

describe('placement index upkeep (the minute sweep)', () => {
  it('takes out hosts silent for 2 minutes, and never-heard ones registered as long ago, leaves briefly silent and newly registered ones, and puts back healthy hosts that belong', () => {
    const hosts = [
      indexed('dead-long'),
      indexed('silent-30s'),
      indexed('never-heard'),
      indexed('registered-just-now', { createdAt: new Date(now - 30_000).toISOString() }),
      indexed('alive'),
      host('back'),
      host('back-cordoned', { cordoned: true }),
      host('back-no-vms', { vmRuntime: 'none' }),
      host('suspect'),
    ];
    const liveness = new Map<string, Liveness>([
      ['dead-long', { lastSeenMs: now - 3 * 60_000, cordoned: false }],
      ['silent-30s', { lastSeenMs: now - 30_000, cordoned: false }],
      ['never-heard', { lastSeenMs: undefined, cordoned: false }],
      ['registered-just-now', { lastSeenMs: undefined, cordoned: false }],
      ['alive', { lastSeenMs: now - 1_000, cordoned: false }],
      ['back', { lastSeenMs: now - 1_000, cordoned: false }],
      ['back-cordoned', { lastSeenMs: now - 1_000, cordoned: true }],
      ['back-no-vms', { lastSeenMs: now - 1_000, cordoned: false }],
      ['suspect', { lastSeenMs: now - 15_000, cordoned: false }],
    ]);
    expect(placementIndexChanges(hosts, liveness, 'us-east-1', now)).toEqual([
      { hostId: 'dead-long', out: true },
      { hostId: 'never-heard', out: true },
      { hostId: 'back', out: false, shard: indexKeys.placementShard('us-east-1', placementShardOf('back')) },
    ]);
  });
});
