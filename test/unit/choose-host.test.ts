import { describe, expect, it } from 'vitest';
import type { HostItem } from '../../events/records.ts';
import { cannotRunVmsError, chooseHost, runsVms } from '#functions/compute/hosts.ts';

const host = (hostId: string, vmCount: number, capacity: number, vmRuntime?: HostItem['vmRuntime']): HostItem => ({
  kind: 'host',
  hostId,
  address: '192.0.2.1',
  capacity,
  vmCount,
  queueUrl: 'q',
  createdAt: '',
  ...(vmRuntime ? { vmRuntime } : {}),
});

describe('chooseHost', () => {
  it('never picks a full or excluded host', () => {
    const hosts = [host('full', 4, 4), host('open', 1, 4), host('excluded', 0, 4)];
    for (let i = 0; i < 50; i++) expect(chooseHost(hosts, new Set(['excluded']))?.hostId).toBe('open');
    expect(chooseHost([host('full', 4, 4)])).toBeUndefined();
  });

  it('never picks a host with auto-placement off, however idle: only VMs that name it go there', () => {
    const namedOnly: HostItem = { ...host('named-only', 0, 100), autoPlacement: 'off' };
    for (let i = 0; i < 50; i++) expect(chooseHost([namedOnly, host('busy', 9, 10)])?.hostId).toBe('busy');
    expect(chooseHost([namedOnly])).toBeUndefined();
  });

  it('never picks a host that runs no VMs, however idle; hosts that never said (older agents, operators) are picked as before', () => {
    const hosts = [host('none', 0, 100, 'none'), host('busy-qemu', 8, 10, 'qemu'), host('busy-process', 8, 10, 'process'), host('unsaid', 8, 10)];
    const picks = new Set(Array.from({ length: 400 }, () => chooseHost(hosts)?.hostId));
    expect(picks).toEqual(new Set(['busy-qemu', 'busy-process', 'unsaid']));
    expect(chooseHost([host('none', 0, 100, 'none')])).toBeUndefined();
  });

  it('tells a named host that runs no VMs apart from one that is full', () => {
    expect(runsVms(host('a', 0, 1, 'none'))).toBe(false);
    expect(runsVms(host('b', 0, 1))).toBe(true);
    expect(cannotRunVmsError(host('a', 0, 1, 'none'), 'hostId')?.message).toMatch(/^hostId: host a cannot run VMs: its agent registered vmRuntime none/);
    expect(cannotRunVmsError(host('a', 0, 1, 'none'), 'hostId')?.statusCode).toBe(409);
    expect(cannotRunVmsError(host('b', 1, 1, 'process'), 'targetHostId')).toBeUndefined();
  });

  it('prefers the less loaded of two choices', () => {
    const picks = Array.from({ length: 400 }, () => chooseHost([host('busy', 9, 10), host('idle', 0, 10)])!.hostId);
    expect(picks.filter((id) => id === 'idle').length).toBeGreaterThan(250);
  });
});
