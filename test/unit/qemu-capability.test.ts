import { describe, expect, it } from 'vitest';
import { checkQemu, effectiveCapabilities, parseQemuVersion, type QemuProbes } from '#host-agent/vm-runtime/qemu-capability.ts';

const tcg = { kind: 'tcg', reason: 'no /dev/kvm' } as const;
/** Root's CapEff on a 5.x+ kernel: every capability. */
const ROOT_STATUS = 'Name:\tnode\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\n';
/** An ordinary user's: none. */
const USER_STATUS = 'Name:\tnode\nUid:\t1000\t1000\t1000\t1000\nCapEff:\t0000000000000000\n';

const probes = (change: Partial<QemuProbes> = {}): QemuProbes => ({
  version: () => ({
    status: 0,
    stdout: 'QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright (c) 2003-2025 Fabrice Bellard\n',
    stderr: '',
  }),
  procStatus: () => ROOT_STATUS,
  accelerator: () => tcg,
  ...change,
});

describe('QEMU capability at the agent start', () => {
  it('reads QEMU’s version line and nothing else', () => {
    expect(parseQemuVersion('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)\nCopyright …')).toBe('10.0.2');
    expect(parseQemuVersion('QEMU emulator version 8.2\n')).toBe('8.2');
    expect(parseQemuVersion('qemu-system-x86_64: command not found')).toBeUndefined();
    expect(parseQemuVersion('')).toBeUndefined();
  });

  it('reads the effective capability set', () => {
    expect(effectiveCapabilities(ROOT_STATUS)).toBe(0x1ffffffffffn);
    expect(effectiveCapabilities(USER_STATUS)).toBe(0n);
    // CAP_NET_ADMIN (bit 12) only.
    expect(effectiveCapabilities('CapEff:\t0000000000001000\n')).toBe(1n << 12n);
    expect(effectiveCapabilities('Name:\tnode\n')).toBeUndefined();
  });

  it('finds nothing missing where QEMU answers, and as root with a host namespace', () => {
    expect(checkQemu({ netns: 'host1' }, probes())).toEqual({ missing: [], version: '10.0.2', accelerator: tcg });
    // Without a namespace no tap is made: root is not needed (guests get no NIC).
    expect(checkQemu({}, probes({ procStatus: () => USER_STATUS })).missing).toEqual([]);
  });

  it('names a QEMU that is not installed, that fails, or that is not QEMU, with what to do', () => {
    const enoent = Object.assign(new Error('spawnSync /opt/qemu ENOENT'), { code: 'ENOENT' });
    expect(checkQemu({ binary: '/opt/qemu' }, probes({ version: () => ({ error: enoent, status: null, stdout: '', stderr: '' }) })).missing).toEqual([
      '/opt/qemu is not installed (Debian: apt-get install qemu-system-x86; or give its path with --qemu-binary)',
    ]);
    expect(checkQemu({}, probes({ version: () => ({ status: 1, stdout: '', stderr: 'error while loading shared libraries: libfoo.so\n' }) })).missing).toEqual([
      '`qemu-system-x86_64 --version` failed (exit 1: error while loading shared libraries: libfoo.so)',
    ]);
    const notQemu = checkQemu({}, probes({ version: () => ({ status: 0, stdout: 'hello\n', stderr: '' }) }));
    expect(notQemu.missing).toEqual(['`qemu-system-x86_64 --version` did not answer as QEMU does ("hello")']);
    expect(notQemu.version).toBeUndefined();
  });

  it('names what a non-root agent lacks for taps in its host namespace', () => {
    expect(checkQemu({ netns: 'host1' }, probes({ procStatus: () => USER_STATUS })).missing).toEqual([
      "not root: guests' taps in --netns host1 need CAP_NET_ADMIN and CAP_SYS_ADMIN (run the agent as root, or without --netns: guests then get no NIC)",
    ]);
    expect(checkQemu({ netns: 'host1' }, probes({ procStatus: () => 'CapEff:\t0000000000001000\n' })).missing).toEqual([
      "not root: guests' taps in --netns host1 need CAP_SYS_ADMIN (run the agent as root, or without --netns: guests then get no NIC)",
    ]);
    // Both missing at once are both said.
    const enoent = Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    expect(
      checkQemu({ netns: 'host1' }, probes({ procStatus: () => USER_STATUS, version: () => ({ error: enoent, status: null, stdout: '', stderr: '' }) }))
        .missing,
    ).toHaveLength(2);
  });

  it('says KVM or TCG without refusing either', () => {
    const kvm = { kind: 'kvm', reason: '/dev/kvm with hardware virtualization' } as const;
    expect(checkQemu({}, probes({ accelerator: () => kvm }))).toMatchObject({ missing: [], accelerator: kvm });
    expect(checkQemu({}, probes())).toMatchObject({ missing: [], accelerator: tcg });
  });
});
