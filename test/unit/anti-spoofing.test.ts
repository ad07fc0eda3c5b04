import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { macOfInterface } from '../../host-agent/data-plane/anti-spoofing.ts';
import { vmInterfaceName } from '../../host-agent/data-plane/desired-state.ts';
import { macOfVm } from '../../host-agent/vm-runtime/vm-taps.ts';

describe('a VM interface and the MAC its guest may send as', () => {
  it('agree, both from the VM id: the runtime gives the guest the MAC the data plane allows on its interface', () => {
    for (const vmId of ['vm-000000000001', 'vm-0123456789ab', 'vm-fedcba987654']) {
      const mac = macOfVm(vmId);
      expect(mac).toBe(macOfInterface(vmInterfaceName(vmId)));
      // Locally administered, unicast, and what the VM id's SHA-256 gives (unchanged for running guests).
      const bytes = createHash('sha256').update(vmId).digest().subarray(0, 5);
      expect(mac).toBe(['02', ...[...bytes].map((byte) => byte.toString(16).padStart(2, '0'))].join(':'));
    }
  });

  it('refuses a name that is not a VM interface', () => {
    for (const device of ['eth0', 'vx00beef', 'sp0123', 'spZZZZZZZZZZZZ', 'sp0123456789ab0'])
      expect(() => macOfInterface(device)).toThrow('not a VM interface');
  });
});
