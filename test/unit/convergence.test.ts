import { describe, expect, it } from 'vitest';
import { summarizeConvergence } from '#functions/host-sync/convergence.ts';

describe('summarizeConvergence', () => {
  const vm = { vmId: 'vm-1', hostId: 'h-2', endpointAddress: '192.0.2.2', endpointVersion: 5 };

  it('counts the hosts running a VM of the network, and those holding this version or a later one', () => {
    const members = [
      { hostId: 'h-1', vmCount: 2 },
      { hostId: 'h-2', vmCount: 1 },
      { hostId: 'h-3', vmCount: 0 },
      { hostId: 'h-4', vmCount: 1 },
    ];
    const acks = [
      { hostId: 'h-1', version: 5 },
      { hostId: 'h-2', version: 6 },
      { hostId: 'h-3', version: 5 },
      { hostId: 'h-4', version: 4 },
    ];
    expect(summarizeConvergence(vm, members, acks)).toEqual({
      vmId: 'vm-1',
      hostId: 'h-2',
      endpoint: { address: '192.0.2.2', version: 5 },
      hostsTotal: 3,
      hostsConverged: 2,
      converged: false,
      pendingHostIds: ['h-4'],
    });
  });

  it('is converged once every host that needs the endpoint acknowledged it, and names at most 50 of those still pending', () => {
    expect(summarizeConvergence(vm, [{ hostId: 'h-2', vmCount: 1 }], [{ hostId: 'h-2', version: 5 }])).toMatchObject({
      hostsTotal: 1,
      converged: true,
      pendingHostIds: [],
    });
    const many = Array.from({ length: 80 }, (_, i) => ({ hostId: `h-${String(i).padStart(2, '0')}`, vmCount: 1 }));
    const summary = summarizeConvergence(vm, many, []);
    expect(summary).toMatchObject({ hostsTotal: 80, hostsConverged: 0, converged: false });
    expect(summary.pendingHostIds).toEqual(many.slice(0, 50).map((member) => member.hostId));
  });
});
