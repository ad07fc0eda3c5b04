import { describe, expect, it } from 'vitest';
import type { DesiredState } from '#host-agent/data-plane/desired-state.ts';
import { networkInterfaces } from '#host-agent/data-plane/network-isolation.ts';

describe('the interfaces of each network on a host, for default deny between networks', () => {
  it('gives each network its tunnel and its local VMs’ interfaces under its VNI; remote VMs have none here', () => {
    const desired: DesiredState = new Map([
      [
        'net-a',
        {
          networkId: 'net-a',
          vni: 0xaa,
          table: 1170,
          device: 'vx0000aa',
          local: new Map([
            ['10.0.0.2', 'sp000000000001'],
            ['10.0.0.3', 'sp000000000002'],
          ]),
          remote: new Map([['10.0.0.4', '192.0.2.7']]),
        },
      ],
      ['net-b', { networkId: 'net-b', vni: 0xbb, table: 1187, device: 'vx0000bb', local: new Map([['10.0.0.2', 'sp000000000003']]), remote: new Map() }],
    ]);
    expect(networkInterfaces(desired)).toEqual([
      { device: 'vx0000aa', vni: 0xaa, vm: false },
      { device: 'sp000000000001', vni: 0xaa, vm: true },
      { device: 'sp000000000002', vni: 0xaa, vm: true },
      { device: 'vx0000bb', vni: 0xbb, vm: false },
      { device: 'sp000000000003', vni: 0xbb, vm: true },
    ]);
  });
});
