import { describe, expect, it } from 'vitest';
import type { EndpointsMessage, NetworkMessage } from '../../events/endpoints.ts';
import { ForwardingTable } from '../../host-agent/forwarding-table.ts';

const endpoints = (epoch: number, version: number, endpoint: string, snapshot = false): EndpointsMessage => ({
  kind: 'endpoints',
  networkId: 'net-1',
  epoch,
  snapshot,
  entries: [{ ip: '10.0.0.5', version, state: 'active', vmId: 'vm-1', hostId: `h-${endpoint}`, endpoint }],
});

describe('ForwardingTable', () => {
  it('keeps the highest version whatever the order of arrival', () => {
    const table = new ForwardingTable();
    table.apply(endpoints(1, 3, '192.0.2.3'));
    const stale = table.apply(endpoints(1, 2, '192.0.2.2'));
    expect(stale).toEqual({ applied: 0, stale: 1, changed: [] });
    expect(table.entry('net-1', '10.0.0.5')).toMatchObject({ version: 3, endpoint: '192.0.2.3' });
  });

  it('never regresses over any duplicated, shuffled replay of a history', () => {
    const history: NetworkMessage[] = [];
    for (let version = 1; version <= 8; version++) history.push(endpoints(1 + Math.floor(version / 3), version, `192.0.2.${version}`));
    for (let trial = 0; trial < 200; trial++) {
      const table = new ForwardingTable();
      const replay = [...history, ...history, ...history].sort(() => Math.random() - 0.5);
      let highest = 0;
      for (const message of replay) {
        table.apply(message);
        const version = table.entry('net-1', '10.0.0.5')!.version;
        expect(version).toBeGreaterThanOrEqual(highest);
        highest = version;
      }
      expect(table.entry('net-1', '10.0.0.5')).toMatchObject({ version: 8, endpoint: '192.0.2.8' });
    }
  });

  it('drops a network on leave, and ignores a leave older than its membership', () => {
    const table = new ForwardingTable();
    table.apply(endpoints(5, 1, '192.0.2.1'));
    expect(table.apply({ kind: 'leave', networkId: 'net-1', epoch: 4 })).toEqual({ applied: 0, stale: 1, changed: [] });
    expect(table.routes()).toHaveLength(1);
    table.apply({ kind: 'leave', networkId: 'net-1', epoch: 6 });
    expect(table.routes()).toHaveLength(0);
    // An update sent before the leave must not bring the network back...
    table.apply(endpoints(5, 2, '192.0.2.2'));
    expect(table.routes()).toHaveLength(0);
    // ...but a later join does.
    table.apply(endpoints(7, 2, '192.0.2.2', true));
    expect(table.routes()).toEqual([{ networkId: 'net-1', ip: '10.0.0.5', endpoint: '192.0.2.2', vmId: 'vm-1', hostId: 'h-192.0.2.2', version: 2 }]);
  });

  it('keeps released addresses as tombstones so an older placement cannot come back', () => {
    const table = new ForwardingTable();
    table.apply(endpoints(1, 1, '192.0.2.1'));
    table.apply({ kind: 'endpoints', networkId: 'net-1', epoch: 1, snapshot: false, entries: [{ ip: '10.0.0.5', version: 2, state: 'released' }] });
    table.apply(endpoints(1, 1, '192.0.2.1'));
    expect(table.routes()).toHaveLength(0);
    expect(table.entry('net-1', '10.0.0.5')).toMatchObject({ version: 2, state: 'released' });
  });
});

describe('ForwardingTable.localVms', () => {
  it('always lists what a scan of the routes finds on its own host, over random histories of moves, releases and leaves', () => {
    const sorted = (vms: { vmId: string; ip: string; networkId: string }[]) =>
      [...vms].sort((a, b) => `${a.networkId}${a.ip}`.localeCompare(`${b.networkId}${b.ip}`));
    for (let trial = 0; trial < 100; trial++) {
      const table = new ForwardingTable('h-self');
      const epochs = new Map<string, number>();
      let version = 0;
      for (let step = 0; step < 60; step++) {
        const networkId = `net-${Math.floor(Math.random() * 3)}`;
        const epoch = (epochs.get(networkId) ?? 0) + (Math.random() < 0.3 ? 1 : 0);
        epochs.set(networkId, epoch);
        if (Math.random() < 0.1) {
          table.apply({ kind: 'leave', networkId, epoch: epoch + 1 });
          epochs.set(networkId, epoch + 1);
          continue;
        }
        const ip = `10.0.0.${Math.floor(Math.random() * 4)}`;
        const hostId = Math.random() < 0.5 ? 'h-self' : 'h-other';
        const released = Math.random() < 0.15;
        table.apply({
          kind: 'endpoints',
          networkId,
          epoch: Math.max(1, epoch),
          snapshot: false,
          entries: [
            released
              ? { ip, version: ++version, state: 'released' }
              : { ip, version: ++version, state: 'active', vmId: `vm-${ip}`, hostId, endpoint: hostId === 'h-self' ? '192.0.2.1' : '192.0.2.2' },
          ],
        });
        const scanned = table
          .routes()
          .filter((route) => route.hostId === 'h-self')
          .map(({ vmId, ip, networkId }) => ({ vmId, ip, networkId }));
        expect(sorted(table.localVms())).toEqual(sorted(scanned));
      }
    }
  });
});
