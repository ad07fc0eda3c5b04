import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, request, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { qemuUnavailableReason } from '../helpers/guest.ts';
import { operatorToken, tenantToken, tokenFor } from '../helpers/tokens.ts';

/** A change reaches its host through the stream, a function and the host's queue: seconds, more under a loaded CI. */
const HOST_CHANGE_MS = 60_000;
/** A QEMU that is not there: what a host without QEMU looks like to its agent. */
const NO_QEMU = ['--runtime', 'qemu', '--qemu-binary', '/nonexistent/qemu-system-x86_64'];

/**
 * Honest fallbacks: an agent says at start what it can run VMs with and registers it. A host that
 * cannot run QEMU refuses to start unless told what to fall back to; one that falls back to none
 * gets no VM, pinned or placed; every VM's view says what runs it; and a VM its owner stopped says
 * so, whatever its host did to stop it.
 */
describe('hosts register what they run VMs with; placement and the VM view follow it', () => {
  const tenantId = uniqueId('rt');
  const tenant = tenantToken(tenantId);
  const asTenant = (method: string, path: string, body?: unknown) => api(method, path, body, tenant);
  let able: RunningAgent;
  let unable: RunningAgent;
  let networkId: string;
  let vmId: string;
  const hostView = async (hostId: string) =>
    (await expectOk(request('listHosts', {}, { token: operatorToken() }))).hosts.find((host) => host.hostId === hostId);
  const vmView = async (id: string) => expectOk(asTenant('GET', `/vms/${id}`));

  beforeAll(async () => {
    [able, unable] = await Promise.all([
      startAgent(uniqueId('rt-able'), '198.51.100.71', 8),
      startAgent(uniqueId('rt-unable'), '198.51.100.72', 8, undefined, [...NO_QEMU, '--runtime-fallback', 'none']),
    ]);
    ({ networkId } = await expectOk(asTenant('POST', '/networks', { name: 'rt', cidr: '10.93.0.0/24' }), 201));
  }, 120_000);

  afterAll(async () => {
    await Promise.all([able?.process.stop(), unable?.process.stop()]);
  });

  it('refuses to start an agent asked for QEMU where QEMU cannot run, saying what is missing and what to do', async () => {
    const refused = await startAgent(uniqueId('rt-refused'), '198.51.100.73', 8, undefined, NO_QEMU).then(
      () => 'started',
      (error: Error) => error.message,
    );
    expect(refused).toContain('exited (2) before it was ready');
    expect(refused).toContain('--runtime qemu cannot run here: /nonexistent/qemu-system-x86_64 is not installed (Debian: apt-get install qemu-system-x86');
    expect(refused).toContain('add --runtime-fallback none|process');
  });

  it('says at start that it falls back, and registers as running no VMs; GET /hosts shows each host’s runtime', async () => {
    expect(unable.stderr.join('\n')).toMatch(
      /--runtime qemu cannot run here: \/nonexistent\/qemu-system-x86_64 is not installed .*Falling back to --runtime none \(--runtime-fallback\): this host registers as running no VMs/,
    );
    expect((await unable.status()).vmRuntime).toMatchObject({
      kind: 'none',
      runtime: expect.stringMatching(/^none \(this host runs no VMs: --runtime qemu cannot run here/),
    });
    expect(await hostView(unable.hostId)).toMatchObject({ hostId: unable.hostId, vmRuntime: 'none', vmCount: 0 });
    const ableHost = await hostView(able.hostId);
    expect(ableHost).toMatchObject({ vmRuntime: 'process' });
    expect(ableHost).not.toHaveProperty('accelerator');
  });

  it('never places a VM on a host that runs none; pinning or migrating one there is refused, saying why', async () => {
    const why = `host ${unable.hostId} cannot run VMs: its agent registered vmRuntime none`;
    const pinned = await createVmOn({ name: 'pinned-to-none', networkId, hostId: unable.hostId }, tenantId);
    expect(pinned.status).toBe(409);
    expect(pinned.body).toEqual({ message: expect.stringContaining(`hostId: ${why}`) });

    vmId = (await expectOk(createVmOn({ name: 'rt-1', networkId, hostId: able.hostId }, tenantId), 201)).vmId;
    const moved = await migrateVmTo(vmId, unable.hostId);
    expect(moved.status).toBe(409);
    expect(moved.body).toEqual({ message: expect.stringContaining(`targetHostId: ${why}`) });

    // Placement's own picks (the region holds other files' hosts too): an idle host with room, never taken.
    const placed = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => (await expectOk(asTenant('POST', '/vms', { name: `placed-${i}`, networkId }), 201)).hostId),
    );
    expect(placed).not.toContain(unable.hostId);
    expect(await hostView(unable.hostId)).toMatchObject({ vmCount: 0 });
    expect((await expectOk(request('listVms', { query: { hostId: unable.hostId, limit: 100 } }, { token: operatorToken() }))).vms).toEqual([]);
  });

  it('shows which runtime runs a VM, and a VM its owner stopped reads "stopped by its owner"', async () => {
    expect(await vmView(vmId)).toMatchObject({ runtime: 'process' });
    await eventually(async () => expect(await vmView(vmId)).toMatchObject({ state: 'running', runtime: 'process' }), HOST_CHANGE_MS, 100);
    await expectOk(asTenant('POST', `/vms/${vmId}/stop`));
    await eventually(async () => expect(await vmView(vmId)).toMatchObject({ state: 'stopped', stateReason: 'stopped by its owner' }), HOST_CHANGE_MS, 100);
    // Its host's last report is the one that holds: it said the same.
    expect((await able.status()).vmRuntime?.guests).toContainEqual(expect.objectContaining({ vmId, state: 'stopped', reason: 'stopped by its owner' }));
    await expectOk(asTenant('POST', `/vms/${vmId}/start`));
    await eventually(async () => expect(await vmView(vmId)).toMatchObject({ state: 'running', runtime: 'process' }), HOST_CHANGE_MS, 100);
  });

  it('keeps a host registered without saying (an operator’s, an older agent’s) as before, and follows what it says on registering again', async () => {
    const hostId = uniqueId('rt-unsaid');
    const register = (body: Record<string, unknown>, token = operatorToken()) =>
      api('POST', '/hosts', { hostId, address: '198.51.100.74', capacity: 2, ...body }, token);
    expect((await expectOk(register({}), 201)).vmRuntime).toBeUndefined();
    await keepAlive(hostId);
    const vm = await expectOk(createVmOn({ name: 'on-unsaid', networkId, hostId }, tenantId), 201);
    expect(vm.runtime).toBeUndefined();
    // Again without saying: nothing changes. Saying none: placement keeps off it from then on.
    expect((await expectOk(register({}))).vmRuntime).toBeUndefined();
    expect(await expectOk(register({ vmRuntime: 'none' }))).toMatchObject({ vmRuntime: 'none' });
    expect((await createVmOn({ name: 'on-none', networkId, hostId }, tenantId)).status).toBe(409);
    expect(await expectOk(register({ vmRuntime: 'qemu', accelerator: 'tcg' }))).toMatchObject({ vmRuntime: 'qemu', accelerator: 'tcg' });
    expect(await expectOk(register({ vmRuntime: 'process' }))).not.toHaveProperty('accelerator');
    expect((await register({ vmRuntime: 'process', accelerator: 'kvm' })).body).toEqual({
      message: 'body.accelerator: only a host with vmRuntime qemu has one',
    });
    await expectOk(asTenant('DELETE', `/vms/${vm.vmId}`), 204);
  });

  it('lets only a host itself (or an operator) say what it runs: another host or a tenant cannot', async () => {
    const claim = { hostId: able.hostId, address: able.address, capacity: 8, vmRuntime: 'none' };
    const byOther = await api('POST', '/hosts', claim, tokenFor('host', unable.hostId));
    expect(byOther).toEqual({ status: 403, body: { message: `only host ${able.hostId} or an operator may do this` } });
    expect((await api('POST', '/hosts', claim, tenant)).status).toBe(403);
    expect(await hostView(able.hostId)).toMatchObject({ vmRuntime: 'process' });
  });

  it.skipIf(qemuUnavailableReason() !== undefined)('registers a host that runs QEMU as qemu, with its accelerator', async () => {
    const qemu = await startAgent(uniqueId('rt-qemu'), '198.51.100.75', 2, undefined, ['--runtime', 'qemu']);
    try {
      expect(qemu.stderr.join('\n')).toMatch(/QEMU \d+\.\d+(\.\d+)? \((kvm|tcg): /);
      expect(await hostView(qemu.hostId)).toMatchObject({ vmRuntime: 'qemu', accelerator: expect.stringMatching(/^(kvm|tcg)$/) });
    } finally {
      await qemu.process.stop();
    }
  });

  it('when a host’s agent comes back running no VMs, its VMs are reported failed with why, not left showing what they were', async () => {
    await able.process.stop();
    // Its guests do not outlive it, and it said why they stopped.
    await eventually(
      async () => expect(await vmView(vmId)).toMatchObject({ state: 'stopped', stateReason: expect.stringContaining('its host agent shut down') }),
      HOST_CHANGE_MS,
      100,
    );
    able = await startAgent(able.hostId, able.address, 8, undefined, ['--runtime', 'none']);
    expect(await hostView(able.hostId)).toMatchObject({ vmRuntime: 'none' });
    await eventually(
      async () =>
        expect(await vmView(vmId)).toMatchObject({
          state: 'failed',
          runtime: 'none',
          stateReason: 'this host runs no VMs (its agent was started with --runtime none); migrate the VM to a host that does',
        }),
      HOST_CHANGE_MS,
      100,
    );
    expect((await createVmOn({ name: 'rt-2', networkId, hostId: able.hostId }, tenantId)).status).toBe(409);
  });
});
