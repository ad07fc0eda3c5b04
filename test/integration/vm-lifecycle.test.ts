import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { tenantToken, tokenFor } from '../helpers/tokens.ts';

/**
 * A VM's life through the API, run by a real host agent with the process runtime (one placeholder
 * process per VM): the state the API shows is what the agent saw, and start, stop, reboot and the
 * console reach the host.
 */
/** A change reaches its host through the stream, a function and the host's queue: seconds, more under a loaded CI. */
const HOST_CHANGE_MS = 60_000;

describe('VM lifecycle through the API', () => {
  const tenantId = uniqueId('life');
  const tenant = tenantToken(tenantId);
  const asTenant = (method: string, path: string, body?: unknown) => api(method, path, body, tenant);
  let agent: RunningAgent;
  let other: RunningAgent;
  let vmId: string;
  const guestOf = async (id: string) => (await agent.status()).vmRuntime?.guests.find((guest: { vmId: string }) => guest.vmId === id);
  const stateOf = async (id: string) => (await expectOk(asTenant('GET', `/vms/${id}`))).state;

  beforeAll(async () => {
    [agent, other] = await Promise.all([startAgent(uniqueId('life-a'), '198.51.100.63', 8), startAgent(uniqueId('life-b'), '198.51.100.64', 8)]);
    const { networkId } = await expectOk(asTenant('POST', '/networks', { name: 'life', cidr: '10.91.0.0/24' }), 201);
    const vm = await expectOk(createVmOn({ name: 'life-1', networkId, hostId: agent.hostId, machineType: 's1.micro' }, tenantId), 201);
    expect(vm).toMatchObject({ state: 'provisioning', powerState: 'running', machineType: 's1.micro' });
    vmId = vm.vmId;
  }, 120_000);

  afterAll(async () => {
    await Promise.all([agent?.process.stop(), other?.process.stop()]);
  });

  it('shows the VM running once its host runs it, with its console', async () => {
    await eventually(async () => expect(await stateOf(vmId)).toBe('running'), HOST_CHANGE_MS, 100);
    expect(await guestOf(vmId)).toMatchObject({ state: 'running' });
    await eventually(async () => {
      const console_ = await expectOk(asTenant('GET', `/vms/${vmId}/console`));
      expect(console_.output).toMatch(/stratoplane-guest: ready \(process runtime: no guest\) boot=\d+ memory=128MiB vcpus=1/);
      expect(Date.parse(console_.updatedAt)).toBeGreaterThan(0);
    });
  });

  it('stops the VM on its host and starts it again: stopped, then running with a new guest', async () => {
    const stopping = await expectOk(asTenant('POST', `/vms/${vmId}/stop`));
    expect(stopping).toMatchObject({ state: 'stopping', powerState: 'stopped' });
    await eventually(async () => expect(await stateOf(vmId)).toBe('stopped'), HOST_CHANGE_MS, 100);
    expect(await guestOf(vmId)).toMatchObject({ state: 'stopped' });
    // Stopping a stopped VM changes nothing; a reboot needs a running one.
    expect(await expectOk(asTenant('POST', `/vms/${vmId}/stop`))).toMatchObject({ state: 'stopped' });
    const reboot = await asTenant('POST', `/vms/${vmId}/reboot`);
    expect(reboot.status).toBe(409);
    expect(reboot.body.message).toContain('only a running VM can be rebooted');

    expect(await expectOk(asTenant('POST', `/vms/${vmId}/start`))).toMatchObject({ state: 'provisioning', powerState: 'running' });
    await eventually(async () => expect(await stateOf(vmId)).toBe('running'), HOST_CHANGE_MS, 100);
  });

  it('reboots a running VM: its host stops the guest and boots it again', async () => {
    const bootOf = (output: string) => /boot=(\d+)/.exec(output)?.[1];
    const before = bootOf((await expectOk(asTenant('GET', `/vms/${vmId}/console`))).output);
    expect(before).toBeDefined();
    await expectOk(asTenant('POST', `/vms/${vmId}/reboot`));
    // A new guest (another process) wrote its own console.
    await eventually(
      async () => {
        const after = bootOf((await expectOk(asTenant('GET', `/vms/${vmId}/console`))).output);
        expect(after).toBeDefined();
        // Should it not come, what the host's agent said is in the failure.
        expect(after, agent.stderr.slice(-15).join('\n')).not.toBe(before);
        expect(await stateOf(vmId)).toBe('running');
      },
      HOST_CHANGE_MS,
      100,
    );
  });

  it("refuses another tenant, a read-only token, another host's report and an old report", async () => {
    const stranger = tenantToken(uniqueId('stranger'));
    for (const action of ['stop', 'start', 'reboot']) expect((await api('POST', `/vms/${vmId}/${action}`, undefined, stranger)).status).toBe(404);
    expect((await api('GET', `/vms/${vmId}/console`, undefined, stranger)).status).toBe(404);
    const readOnly = tokenFor('tenant', tenantId, ['tenant:read']);
    expect((await api('POST', `/vms/${vmId}/stop`, undefined, readOnly)).status).toBe(403);

    const report = { state: 'failed', reason: 'spoofed', observedAt: Date.now() + 60_000 };
    // Another host, in its own name: the VM does not run there.
    const spoof = await api('PUT', `/hosts/${other.hostId}/vms/${vmId}/state`, report, tokenFor('host', other.hostId));
    expect(spoof.status).toBe(409);
    // Another host, in the VM's host's name: its token is not that host's.
    expect((await api('PUT', `/hosts/${agent.hostId}/vms/${vmId}/state`, report, tokenFor('host', other.hostId))).status).toBe(403);
    // A tenant cannot report at all.
    expect((await api('PUT', `/hosts/${agent.hostId}/vms/${vmId}/state`, report, tenant)).status).toBe(403);
    // The VM's own host, replaying a report older than the last: ignored.
    const replay = await expectOk(api('PUT', `/hosts/${agent.hostId}/vms/${vmId}/state`, { state: 'stopped', observedAt: 1 }, tokenFor('host', agent.hostId)));
    expect(replay).toEqual({ accepted: false });
    expect(await stateOf(vmId)).toBe('running');
    // A console bigger than the API keeps is refused whole.
    const flood = await api(
      'PUT',
      `/hosts/${agent.hostId}/vms/${vmId}/state`,
      { state: 'running', observedAt: 2, console: 'x'.repeat(20_000) },
      tokenFor('host', agent.hostId),
    );
    expect(flood.status).toBe(400);
  });

  it('removes the guest from its host when the VM is deleted', async () => {
    await expectOk(asTenant('DELETE', `/vms/${vmId}`), 204);
    await eventually(async () => expect(await guestOf(vmId)).toBeUndefined(), HOST_CHANGE_MS, 100);
    expect((await asTenant('GET', `/vms/${vmId}/console`)).status).toBe(404);
  });
});
