import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DesiredState, deviceOf, routingTableOf, vniOf } from '../../host-agent/data-plane/desired-state.ts';
import { LinuxDataPlane } from '../../host-agent/data-plane/linux-data-plane.ts';
import { DataPlaneLab, type LabHost, labUnavailableReason } from '../../local/data-plane/lab.ts';

const run = promisify(execFile);
const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`Linux data plane tests skipped: ${unavailable}`);

/** A network with one VM on another host (no local interface needed). */
function networkWithRemoteVm(networkId: string, vmIp: string, host: string): DesiredState {
  const vni = vniOf(networkId);
  return new Map([[networkId, { networkId, vni, table: routingTableOf(vni), device: deviceOf(vni), local: new Map(), remote: new Map([[vmIp, host]]) }]]);
}
const merged = (...states: DesiredState[]): DesiredState => new Map(states.flatMap((state) => [...state]));

/**
 * The programming of one host's namespace, driven directly: what an agent after a restart does
 * with the devices the one before it left.
 */
describe.skipIf(unavailable !== undefined)('Linux data plane', () => {
  const lab = new DataPlaneLab(`ld${process.pid % 10_000}`, '172.31.233');
  let host: LabHost;
  const ipIn = async (...args: string[]) => (await run('ip', ['-n', host.netns, ...args])).stdout;

  beforeAll(async () => {
    [host] = (await lab.addHosts(1)) as [LabHost];
  });

  afterAll(() => lab.destroy());

  it('after a restart, prunes only the devices the whole state does not want, even while a partial one is still being programmed', async () => {
    const [a, c, gone] = [
      networkWithRemoteVm('net-kept-a', '10.50.0.2', '172.31.233.99'),
      networkWithRemoteVm('net-kept-c', '10.51.0.2', '172.31.233.98'),
      networkWithRemoteVm('net-left', '10.52.0.2', '172.31.233.97'),
    ];
    const before = await LinuxDataPlane.open(host.netns, host.underlay, () => {});
    await before.update(merged(a, c, gone), true);
    await before.close();
    const [deviceA] = [...a.values()].map((network) => network.device);
    const tableA = routingTableOf(vniOf('net-kept-a'));
    // A route of A's table the data plane does not own (a network pair's, say): it must outlive the restart.
    await ipIn('route', 'add', '10.60.0.9/32', 'dev', deviceA!, 'table', String(tableA));
    const indexBefore = await ipIn('-o', 'link', 'show', deviceA!);

    // The agent after it: its start-up resync applies one network at a time, then says the state is whole.
    const after = await LinuxDataPlane.open(host.netns, host.underlay, () => {});
    void after.update(c);
    await after.update(merged(a, c), true);
    await after.settled();

    expect(await ipIn('-o', 'link', 'show', deviceA!)).toBe(indexBefore);
    expect(await ipIn('route', 'show', 'table', String(tableA))).toContain('10.60.0.9 dev');
    const devices = await ipIn('-o', 'link', 'show', 'type', 'vxlan');
    expect(devices).toContain(deviceOf(vniOf('net-kept-c')));
    expect(devices).not.toContain(deviceOf(vniOf('net-left')));
    await after.close();
  });

  it('applies redirects of an address in the order asked: the redirect back to the guest is never overtaken by the one it undoes', async () => {
    // A migration's source: at the guest's STOP its address goes into the tunnel without waiting; a
    // transfer that fails right after sends it back to the guest's interface, which must be the last word.
    const [networkId, vmIp] = ['net-moving', '10.53.0.9'];
    const plane = await LinuxDataPlane.open(host.netns, host.underlay, () => {});
    await plane.update(networkWithRemoteVm(networkId, vmIp, '172.31.233.96'), true);
    await ipIn('link', 'add', 'guest-tap', 'type', 'veth', 'peer', 'name', 'guest-peer');
    await ipIn('link', 'set', 'guest-tap', 'up');
    const table = String(routingTableOf(vniOf(networkId)));
    const routeOf = async () => (await ipIn('route', 'show', 'table', table)).split('\n').find((line) => line.startsWith(`${vmIp} `));
    const overtaken: number[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      const away = plane.redirectNow(networkId, vmIp);
      await plane.redirectNow(networkId, vmIp, 'guest-tap');
      await away;
      if (!(await routeOf())?.includes('dev guest-tap')) overtaken.push(attempt);
    }
    expect(overtaken).toEqual([]);
    await plane.close();
  });
});
