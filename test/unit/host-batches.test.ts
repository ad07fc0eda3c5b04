import { describe, expect, it } from 'vitest';
import { HostMessageBatch } from '../../events/endpoints.ts';
import { packHostBodies, type Outgoing } from '#functions/host-sync/host-batches.ts';

const update = (hostId: string, sourceId: string, ip: string): Outgoing => ({
  hostId,
  sourceId,
  message: {
    kind: 'endpoints',
    networkId: 'net-1',
    epoch: 1,
    snapshot: false,
    entries: [{ ip, version: 1, state: 'active', vmId: 'vm-1', hostId: 'h1', endpoint: '192.0.2.1' }],
  },
});

describe('packHostBodies', () => {
  it('sends one body per host for many changes', () => {
    const bodies = packHostBodies([update('h1', 'a', '10.0.0.2'), update('h2', 'a', '10.0.0.2'), update('h1', 'b', '10.0.0.3')]);
    expect(bodies.map((body) => [body.hostId, [...body.sourceIds]])).toEqual([
      ['h1', ['a', 'b']],
      ['h2', ['a']],
    ]);
    expect(HostMessageBatch.parse(JSON.parse(bodies[0]!.body)).messages).toHaveLength(2);
  });

  it('splits a snapshot that does not fit into bodies under the limit, losing no entry', () => {
    const entries = Array.from({ length: 3000 }, (_, i) => ({
      ip: `10.0.${Math.floor(i / 250)}.${i % 250}`,
      version: 1,
      state: 'active' as const,
      vmId: `vm-${i}`,
      hostId: 'h1',
      endpoint: '192.0.2.1',
    }));
    const bodies = packHostBodies(
      [{ hostId: 'h1', sourceId: 'a', message: { kind: 'endpoints', networkId: 'net-1', epoch: 1, snapshot: true, entries } }],
      64 * 1024,
    );
    expect(bodies.length).toBeGreaterThan(1);
    for (const body of bodies) expect(Buffer.byteLength(body.body)).toBeLessThanOrEqual(64 * 1024);
    const received = bodies.flatMap((body) =>
      HostMessageBatch.parse(JSON.parse(body.body)).messages.flatMap((message) => (message.kind === 'endpoints' ? message.entries : [])),
    );
    expect(received.map((entry) => entry.vmId)).toEqual(entries.map((entry) => entry.vmId));
  });
});
