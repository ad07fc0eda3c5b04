import { describe, expect, it } from 'vitest';
import { ForwardingTable } from '../../host-agent/forwarding-table.ts';
import { desiredState, deviceOf, routingTableOf, vmInterfaceName, vniOf, vniOfDevice } from '../../host-agent/data-plane/desired-state.ts';
import { withPluggedInterfaces } from '../../host-agent/data-plane/linux-data-plane.ts';
import { macOf, planCommands } from '../../host-agent/data-plane/plan-commands.ts';

const H1 = '172.31.254.11';
const H2 = '172.31.254.12';
const H3 = '172.31.254.13';

/** Host 1's table for one network: its own VM 10.0.0.5, and 10.0.0.6 on the host at `serverAt`. */
function tableWith(serverAt: string, serverHost: string, version: number): ForwardingTable {
  const table = new ForwardingTable();
  table.apply({
    kind: 'endpoints',
    networkId: 'net-1',
    epoch: 1,
    snapshot: true,
    entries: [
      { ip: '10.0.0.5', version: 1, state: 'active', vmId: 'vm-client', hostId: 'h1', endpoint: H1 },
      { ip: '10.0.0.6', version, state: 'active', vmId: 'vm-server', hostId: serverHost, endpoint: serverAt },
    ],
  });
  return table;
}

describe('data plane plan', () => {
  const vni = vniOf('net-1');
  const device = deviceOf(vni);
  const table = routingTableOf(vni);

  it('makes a network a VXLAN device and table, a route to each local VM interface, and a tunnel per remote host', () => {
    const plan = planCommands(new Map(), desiredState(tableWith(H2, 'h2', 1), 'h1'));
    expect(plan.newDevices.map((network) => network.device)).toEqual([device]);
    expect(plan.bridgeApply).toEqual([`fdb replace ${macOf(H2)} dev ${device} dst ${H2} self permanent`]);
    expect(plan.ipApply).toEqual([
      `addr replace 169.254.0.1/32 dev ${vmInterfaceName('vm-client')}`,
      `link set ${vmInterfaceName('vm-client')} up`,
      `rule add pref 10000 iif ${vmInterfaceName('vm-client')} lookup ${table}`,
      `route replace 10.0.0.5/32 dev ${vmInterfaceName('vm-client')} table ${table}`,
      `route replace 10.0.0.6/32 dev ${device} table ${table}`,
      `neigh replace 10.0.0.6 lladdr 02:53:ac:1f:fe:0c dev ${device} nud permanent`,
    ]);
    expect(plan.ipRemove).toEqual([]);
  });

  it('moves a remote VM to its new host by one neighbour entry, and drops the tunnel no VM needs any more', () => {
    const before = desiredState(tableWith(H2, 'h2', 1), 'h1');
    const plan = planCommands(before, desiredState(tableWith(H3, 'h3', 2), 'h1'));
    expect(plan.newDevices).toEqual([]);
    expect(plan.bridgeApply).toEqual([`fdb replace ${macOf(H3)} dev ${device} dst ${H3} self permanent`]);
    expect(plan.ipApply).toEqual([`neigh replace 10.0.0.6 lladdr ${macOf(H3)} dev ${device} nud permanent`]);
    expect(plan.ipRemove).toEqual([]);
    expect(plan.bridgeRemove).toEqual([`fdb del ${macOf(H2)} dev ${device} dst ${H2} self`]);
  });

  it('routes a VM that arrives to its interface, and a VM that leaves into the tunnel', () => {
    // Host 2's view: the server was its own, and moves to host 3.
    const before = desiredState(tableWith(H2, 'h2', 1), 'h2');
    const plan = planCommands(before, desiredState(tableWith(H3, 'h3', 2), 'h2'));
    expect(plan.ipApply).toEqual([
      `route replace 10.0.0.6/32 dev ${device} table ${table}`,
      `neigh replace 10.0.0.6 lladdr ${macOf(H3)} dev ${device} nud permanent`,
    ]);
    expect(plan.ipRemove).toEqual([`rule del pref 10000 iif ${vmInterfaceName('vm-server')} lookup ${table}`]);
    // And back: the neighbour entry goes, the route points at the interface again.
    const back = planCommands(desiredState(tableWith(H3, 'h3', 2), 'h2'), desiredState(tableWith(H2, 'h2', 3), 'h2'));
    expect(back.ipApply).toContain(`route replace 10.0.0.6/32 dev ${vmInterfaceName('vm-server')} table ${table}`);
    expect(back.ipRemove).toEqual([`neigh del 10.0.0.6 dev ${device}`]);
  });

  it("routes a VM moving live as its migration says before the table does: to the destination at the source's redirect, to its tap at the destination", () => {
    // Host 2 runs the server; its guest paused for its last copy and goes to host 3.
    const atSource = planCommands(
      desiredState(tableWith(H2, 'h2', 1), 'h2'),
      desiredState(tableWith(H2, 'h2', 1), 'h2', new Map([['vm-server', { runsHere: false, endpoint: H3 }]])),
    );
    expect(atSource.bridgeApply).toEqual([`fdb replace ${macOf(H3)} dev ${device} dst ${H3} self permanent`]);
    expect(atSource.ipApply).toEqual([
      `route replace 10.0.0.6/32 dev ${device} table ${table}`,
      `neigh replace 10.0.0.6 lladdr ${macOf(H3)} dev ${device} nud permanent`,
    ]);
    expect(atSource.ipRemove).toEqual([`rule del pref 10000 iif ${vmInterfaceName('vm-server')} lookup ${table}`]);
    // Host 1 is the destination: the server's address goes to its tap here before its endpoint says so.
    const atDestination = desiredState(tableWith(H2, 'h2', 1), 'h1', new Map([['vm-server', { runsHere: true }]]));
    expect(atDestination.get('net-1')!.local.get('10.0.0.6')).toBe(vmInterfaceName('vm-server'));
    expect(atDestination.get('net-1')!.remote.has('10.0.0.6')).toBe(false);
    // Once the table says so, the migration's route changes nothing.
    expect(
      planCommands(
        desiredState(tableWith(H3, 'h3', 2), 'h2'),
        desiredState(tableWith(H3, 'h3', 2), 'h2', new Map([['vm-server', { runsHere: false, endpoint: H3 }]])),
      ),
    ).toMatchObject({
      ipApply: [],
      ipRemove: [],
      bridgeApply: [],
    });
  });

  it('removes a network the host left: its rules, table and device', () => {
    const before = desiredState(tableWith(H2, 'h2', 1), 'h1');
    const plan = planCommands(before, new Map());
    expect(plan.ipRemove).toEqual([
      `rule del pref 10000 iif ${vmInterfaceName('vm-client')} lookup ${table}`,
      `rule del pref 10000 iif ${device} lookup ${table}`,
      `route flush table ${table}`,
      `link del ${device}`,
    ]);
  });

  it('names interfaces within Linux limits and derives device addresses from underlay addresses', () => {
    expect(vmInterfaceName('vm-8e9773841ca7')).toMatch(/^sp[0-9a-f]{12}$/);
    expect(macOf('10.0.0.1')).toBe('02:53:0a:00:00:01');
    expect(vniOf('net-1')).toBeGreaterThan(0);
    expect(vniOf('net-1')).toBeLessThan(2 ** 24);
    expect(deviceOf(0xabc)).toBe('vx000abc');
    expect(vniOfDevice(deviceOf(vniOf('net-1')))).toBe(vniOf('net-1'));
  });

  it('leaves a local VM out until its interface is plugged in, and programs it once it is', () => {
    const wanted = desiredState(tableWith(H2, 'h2', 1), 'h1');
    const before = withPluggedInterfaces(wanted, new Set(['lo', 'eth0']));
    expect(before.waiting).toBe(true);
    const first = planCommands(new Map(), before.desired);
    // The tunnel and the remote VM's route go in now; nothing names the interface that is not there.
    expect(first.ipApply).toEqual([
      `route replace 10.0.0.6/32 dev ${device} table ${table}`,
      `neigh replace 10.0.0.6 lladdr ${macOf(H2)} dev ${device} nud permanent`,
    ]);
    const plugged = withPluggedInterfaces(wanted, new Set(['lo', 'eth0', vmInterfaceName('vm-client')]));
    expect(plugged.waiting).toBe(false);
    expect(planCommands(before.desired, plugged.desired).ipApply).toEqual([
      `addr replace 169.254.0.1/32 dev ${vmInterfaceName('vm-client')}`,
      `link set ${vmInterfaceName('vm-client')} up`,
      `rule add pref 10000 iif ${vmInterfaceName('vm-client')} lookup ${table}`,
      `route replace 10.0.0.5/32 dev ${vmInterfaceName('vm-client')} table ${table}`,
    ]);
  });
});
