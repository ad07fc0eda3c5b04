import { describe, expect, it } from 'vitest';
import type { EndpointsMessage } from '../../events/endpoints.ts';
import type { MemberItem, SlotItem, VmItem } from '../../events/records.ts';
import { changesFromItemUpdate } from '#functions/host-sync/network-changes.ts';
import { messagesFor } from '#functions/host-sync/fanout.ts';
import { deliveredAlready, deliveredVersionsIn } from '#functions/host-sync/delivered-endpoints.ts';

const slot = (version: number, endpoint?: string): SlotItem => ({
  kind: 'slot',
  networkId: 'net-1',
  ip: '10.0.0.5',
  version,
  state: endpoint ? 'active' : 'released',
  vmId: endpoint ? 'vm-1' : undefined,
  hostId: endpoint ? 'h1' : undefined,
  endpoint,
});
const member = (hostId: string, vmCount: number, epoch: number): MemberItem => ({ kind: 'member', networkId: 'net-1', hostId, vmCount, epoch });

describe('changesFromItemUpdate', () => {
  it('turns a slot version change into an endpoint change', () => {
    expect(changesFromItemUpdate(slot(1, '192.0.2.1'), slot(2, '192.0.2.2'))).toEqual([
      { kind: 'endpoint', networkId: 'net-1', entry: { ip: '10.0.0.5', version: 2, state: 'active', vmId: 'vm-1', hostId: 'h1', endpoint: '192.0.2.2' } },
    ]);
    expect(changesFromItemUpdate(slot(2, '192.0.2.2'), slot(2, '192.0.2.2'))).toEqual([]);
  });

  it('turns membership count crossing zero into join and leave', () => {
    expect(changesFromItemUpdate(undefined, member('h1', 1, 1))).toEqual([{ kind: 'join', networkId: 'net-1', hostId: 'h1', epoch: 1 }]);
    expect(changesFromItemUpdate(member('h1', 1, 1), member('h1', 2, 2))).toEqual([]);
    expect(changesFromItemUpdate(member('h1', 1, 3), member('h1', 0, 4))).toEqual([{ kind: 'leave', networkId: 'net-1', hostId: 'h1', epoch: 4 }]);
    expect(changesFromItemUpdate(member('h1', 0, 4), member('h1', 1, 5))).toEqual([{ kind: 'join', networkId: 'net-1', hostId: 'h1', epoch: 5 }]);
  });
});

describe('changesFromItemUpdate for VMs', () => {
  const vm = (serviceAccountId?: string): VmItem => ({
    kind: 'vm',
    vmId: 'vm-1',
    tenantId: 't1',
    projectId: 'p1',
    name: 'vm',
    networkId: 'net-1',
    ip: '10.0.0.5',
    hostId: 'h1',
    state: 'running',
    serviceAccountId,
    createdAt: '',
    updatedAt: '',
  });

  it("asks the VM's host to refresh credentials when its service account changes, and only then", () => {
    const refresh = [{ kind: 'credentials', networkId: 'net-1', hostId: 'h1', vmId: 'vm-1' }];
    expect(changesFromItemUpdate(vm(), vm('sa-1'))).toEqual(refresh);
    expect(changesFromItemUpdate(vm('sa-1'), vm())).toEqual(refresh);
    expect(changesFromItemUpdate(vm('sa-1'), vm('sa-1'))).toEqual([]);
    expect(changesFromItemUpdate(undefined, vm('sa-1'))).toEqual([]);
  });

  it("asks the VM's host to fetch its pair secrets again when a pair to it is revoked or lifted", () => {
    const refresh = [{ kind: 'credentials', networkId: 'net-1', hostId: 'h1', vmId: 'vm-1' }];
    const revoked: VmItem = { ...vm(), pairRevocations: { 'vm-2': { revokedAt: 1 } }, pairRevocationsRevision: 1 };
    expect(changesFromItemUpdate(vm(), revoked)).toEqual(refresh);
    expect(changesFromItemUpdate(revoked, { ...revoked, pairRevocations: { 'vm-2': { revokedAt: 1, liftedAt: 2 } }, pairRevocationsRevision: 2 })).toEqual(
      refresh,
    );
    expect(changesFromItemUpdate(revoked, { ...revoked, updatedAt: 'later' })).toEqual([]);
  });

  it('asks the host to fetch again when how the VM runs changes, not when the host reports its state', () => {
    const refresh = [{ kind: 'credentials', networkId: 'net-1', hostId: 'h1', vmId: 'vm-1' }];
    const before: VmItem = { ...vm(), powerState: 'running', bootGeneration: 0, waitingForImage: true };
    expect(changesFromItemUpdate(before, { ...before, powerState: 'stopped' })).toEqual(refresh);
    expect(changesFromItemUpdate(before, { ...before, bootGeneration: 1 })).toEqual(refresh);
    expect(changesFromItemUpdate(before, { ...before, waitingForImage: undefined })).toEqual(refresh);
    expect(changesFromItemUpdate(before, { ...before, state: 'stopping', stateReason: 'x', stateObservedAt: 5 })).toEqual([]);
  });

  it('tells both ends of a live migration when its phase or port changes, and both when it ends', () => {
    const tell = (...hosts: string[]) => hosts.map((hostId) => ({ kind: 'credentials', networkId: 'net-1', hostId, vmId: 'vm-1' }));
    const migration = {
      migrationId: 'mig-0000000000a1',
      phase: 'preparing' as const,
      sourceHostId: 'h1',
      sourceAddress: '10.1.0.1',
      targetHostId: 'h2',
      targetAddress: '10.1.0.2',
      startedAt: '2026-12-03T00:00:00.000Z',
      updatedAt: '2026-12-03T00:00:00.000Z',
    };
    const running: VmItem = { ...vm(), state: 'running' };
    const preparing: VmItem = { ...running, migration };
    const transferring: VmItem = { ...running, migration: { ...migration, phase: 'transferring', port: 49200 } };
    // At the cut-over the VM is the destination's.
    const cutOver: VmItem = { ...running, hostId: 'h2', migration: { ...migration, phase: 'cut-over', port: 49200 } };
    expect(changesFromItemUpdate(running, preparing)).toEqual(tell('h1', 'h2'));
    expect(changesFromItemUpdate(preparing, transferring)).toEqual(tell('h1', 'h2'));
    expect(changesFromItemUpdate(transferring, cutOver)).toEqual(tell('h2', 'h1'));
    expect(changesFromItemUpdate(cutOver, { ...running, hostId: 'h2' })).toEqual(tell('h2', 'h1'));
    // Its own time stamps alone are nothing a host acts on.
    expect(changesFromItemUpdate(preparing, { ...preparing, migration: { ...migration, updatedAt: '2026-12-03T00:00:01.000Z' } })).toEqual([]);
  });

  it('asks the host to fetch again when a disk is attached, detached, or an attached one changes', () => {
    const refresh = [{ kind: 'credentials', networkId: 'net-1', hostId: 'h1', vmId: 'vm-1' }];
    const before: VmItem = { ...vm(), diskIds: new Set(['disk-000000000001']) };
    expect(changesFromItemUpdate(before, { ...before, diskIds: new Set(['disk-000000000001', 'disk-000000000002']) })).toEqual(refresh);
    expect(changesFromItemUpdate(before, { ...before, diskIds: undefined })).toEqual(refresh);
    expect(changesFromItemUpdate(before, { ...before, disksRevision: 1 })).toEqual(refresh);
    // The same disks in another order are the same disks.
    const two: VmItem = { ...vm(), diskIds: new Set(['disk-000000000001', 'disk-000000000002']) };
    expect(changesFromItemUpdate(two, { ...two, diskIds: new Set(['disk-000000000002', 'disk-000000000001']) })).toEqual([]);
  });
});

describe('changesFromItemUpdate for disks', () => {
  const disk = (hostId?: string) => ({ kind: 'disk' as const, diskId: 'disk-000000000001', poolId: 'pool-1', ...(hostId ? { hostId } : {}) });

  it("tells the host that holds a deleted disk's file, and nobody for a disk never attached or one that changed", () => {
    expect(changesFromItemUpdate(disk('h1'), undefined)).toEqual([{ kind: 'disk-deleted', hostId: 'h1', diskId: 'disk-000000000001', poolId: 'pool-1' }]);
    expect(changesFromItemUpdate(disk(), undefined)).toEqual([]);
    expect(changesFromItemUpdate(disk('h1'), disk('h1'))).toEqual([]);
    expect(changesFromItemUpdate(undefined, disk('h1'))).toEqual([]);
  });

  it("tells the network's hosts when a network is allowed to open pairs to it, or no longer", () => {
    const allowed = { kind: 'allowed-source', networkId: 'net-2', sourceNetworkId: 'net-1' } as const;
    expect(changesFromItemUpdate(undefined, allowed)).toEqual([{ kind: 'allowed-sources', networkId: 'net-2' }]);
    expect(changesFromItemUpdate(allowed, undefined)).toEqual([{ kind: 'allowed-sources', networkId: 'net-2' }]);
    expect(changesFromItemUpdate(allowed, allowed)).toEqual([]);
  });
});

describe('messagesFor', () => {
  const partition = { slots: [slot(3, '192.0.2.9')], members: [member('h1', 2, 7), member('h2', 0, 4), member('h3', 1, 2)] };

  it('sends an endpoint change to current members only, each with its own epoch', () => {
    const out = messagesFor({ kind: 'endpoint', networkId: 'net-1', entry: { ip: '10.0.0.5', version: 3, state: 'active' } }, partition, 'm1');
    expect(out.map((item) => [item.hostId, (item.message as EndpointsMessage).epoch])).toEqual([
      ['h1', 7],
      ['h3', 2],
    ]);
  });

  it('sends an endpoint change delivered already by the function that committed it (the fast path) to nobody again, and a later one to all', () => {
    const delivered = { ...partition, slots: [{ ...slot(3, '192.0.2.9'), deliveredVersion: 3 }] };
    const change = (version: number) => ({ kind: 'endpoint' as const, networkId: 'net-1', entry: { ip: '10.0.0.5', version, state: 'active' as const } });
    expect(messagesFor(change(3), delivered, 'm1')).toEqual([]);
    expect(messagesFor(change(2), delivered, 'm1')).toEqual([]);
    expect(messagesFor(change(4), delivered, 'm1').map((item) => item.hostId)).toEqual(['h1', 'h3']);
    // Another address's delivery says nothing of this one.
    const elsewhere = { ...partition, slots: [{ ...slot(3, '192.0.2.9'), ip: '10.0.0.6', deliveredVersion: 3 }] };
    expect(messagesFor(change(3), elsewhere, 'm1').map((item) => item.hostId)).toEqual(['h1', 'h3']);
  });

  it('answers a join with a snapshot, unless the host has left again', () => {
    const [join] = messagesFor({ kind: 'join', networkId: 'net-1', hostId: 'h3', epoch: 1 }, partition, 'm1');
    expect(join!.message).toMatchObject({ kind: 'endpoints', snapshot: true, epoch: 2 });
    expect(messagesFor({ kind: 'join', networkId: 'net-1', hostId: 'h2', epoch: 3 }, partition, 'm1')).toEqual([]);
  });

  it("sends a change of the network's allowed sources to its current members only", () => {
    const out = messagesFor({ kind: 'allowed-sources', networkId: 'net-1' }, partition, 'm1');
    expect(out).toEqual([
      { hostId: 'h1', sourceId: 'm1', message: { kind: 'allowed-sources-changed', networkId: 'net-1' } },
      { hostId: 'h3', sourceId: 'm1', message: { kind: 'allowed-sources-changed', networkId: 'net-1' } },
    ]);
  });
});

describe('the backstop before the fan-out queue', () => {
  const change = (version: number, ip = '10.0.0.5') => ({ kind: 'endpoint' as const, networkId: 'net-1', entry: { ip, version, state: 'active' as const } });

  it('drops an endpoint change whose slot shows that version (or a later one) delivered, in the same batch or read after it', () => {
    // The commit, then the fast path's mark of it, in one batch.
    const delivered = deliveredVersionsIn([slot(3, '192.0.2.9'), { ...slot(3, '192.0.2.9'), deliveredVersion: 3 }, undefined]);
    expect(deliveredAlready(change(3), delivered)).toBe(true);
    expect(deliveredAlready(change(2), delivered)).toBe(true);
    expect(deliveredAlready(change(4), delivered)).toBe(false);
    // Another address's mark, another network's, or a version the mark has not reached says nothing.
    expect(deliveredAlready(change(3, '10.0.0.6'), delivered)).toBe(false);
    expect(deliveredAlready({ ...change(3), networkId: 'net-2' }, delivered)).toBe(false);
    expect(deliveredAlready(change(4), deliveredVersionsIn([{ ...slot(4, '192.0.2.9'), deliveredVersion: 3 }]))).toBe(false);
  });

  it('forwards every change that is not an endpoint change, and any change when nothing is known', () => {
    const delivered = deliveredVersionsIn([{ ...slot(9, '192.0.2.9'), deliveredVersion: 9 }]);
    expect(deliveredAlready({ kind: 'join', networkId: 'net-1', hostId: 'h1', epoch: 1 }, delivered)).toBe(false);
    expect(deliveredAlready({ kind: 'credentials', networkId: 'net-1', hostId: 'h1', vmId: 'vm-1' }, delivered)).toBe(false);
    expect(deliveredAlready(change(1), new Map())).toBe(false);
  });
});
