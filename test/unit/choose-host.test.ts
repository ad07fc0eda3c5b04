import { describe, expect, it } from 'vitest';
import type { HostItem } from '../../events/records.ts';
import { chooseHost } from '#functions/compute/hosts.ts';

const host = (hostId: string, vmCount: number, capacity: number): HostItem => ({
  kind: 'host',
  hostId,
  address: '192.0.2.1',
  capacity,
  vmCount,
  queueUrl: 'q',
  createdAt: '',
});

describe('chooseHost', () => {
  it('never picks a full or excluded host', () => {
    const hosts = [host('full', 4, 4), host('open', 1, 4), host('excluded', 0, 4)];
    for (let i = 0; i < 50; i++) expect(chooseHost(hosts, new Set(['excluded']))?.hostId).toBe('open');
    expect(chooseHost([host('full', 4, 4)])).toBeUndefined();
  });

  it('prefers the less loaded of two choices', () => {
    const picks = Array.from({ length: 400 }, () => chooseHost([host('busy', 9, 10), host('idle', 0, 10)])!.hostId);
    expect(picks.filter((id) => id === 'idle').length).toBeGreaterThan(250);
  });
});
