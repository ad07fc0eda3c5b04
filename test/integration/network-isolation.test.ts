import { execFile } from 'node:child_process';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingTableOf, vmInterfaceName, vniOf } from '../../host-agent/data-plane/desired-state.ts';
import { DataPlaneLab, labUnavailableReason, type LabVm } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';

const run = promisify(execFile);
const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`network isolation tests skipped: ${unavailable}`);

/** Sends `count` UDP datagrams to port 7100 of `to` from inside a VM's namespace. */
async function sendUdp(vm: LabVm, to: string, payload: string, count = 5): Promise<void> {
  const script = `const s=require('node:dgram').createSocket('udp4');s.bind(0,${JSON.stringify(vm.ip)},async()=>{for(let i=0;i<${count};i++){s.send(${JSON.stringify(payload)},7100,${JSON.stringify(to)});await new Promise(r=>setTimeout(r,20));}setTimeout(()=>s.close(),50);});`;
  await run('ip', ['netns', 'exec', vm.netns, process.execPath, '-e', script]);
}

/**
 * Two networks on one host, VMs of both plugged in: within a network traffic flows; a packet from
 * one network routed to a VM of the other (by a route that should not be there) is dropped where
 * it would be delivered, and counted (host-agent/data-plane/network-isolation.ts).
 */
describe.skipIf(unavailable !== undefined)('default deny between networks', () => {
  const lab = new DataPlaneLab(`ni${process.pid % 10_000}`, '172.31.237');
  let agent: RunningAgent;
  const vms: Record<'a1' | 'a2' | 'b1', LabVm> = {} as never;
  const networks: Record<'a' | 'b', string> = {} as never;
  const received: Record<string, string[]> = {};

  /** Packets the host dropped on their way to a VM of another network. */
  const dropped = async () => {
    const { stdout } = await run('ip', ['netns', 'exec', lab.hosts[0]!.netns, 'nft', '-j', 'list', 'chain', 'inet', 'stratoplane_networks', 'to_vm']);
    return (JSON.parse(stdout).nftables as { rule?: { expr: { counter?: { packets: number } }[] } }[])
      .flatMap((item) => item.rule?.expr ?? [])
      .reduce((total, expr) => total + (expr.counter?.packets ?? 0), 0);
  };
  const listen = async (vm: LabVm) => {
    received[vm.vmId] = [];
    const listener = lab.spawnIn(vm.netns, [
      process.execPath,
      '-e',
      `const s=require('node:dgram').createSocket('udp4');s.on('message',(m)=>console.log(m.toString()));s.bind(7100,()=>console.log('READY'));`,
    ]);
    const lines = readline.createInterface({ input: listener.stdout! });
    await new Promise<void>((resolve) =>
      lines.on('line', (line) => {
        if (line === 'READY') return resolve();
        received[vm.vmId]!.push(line);
      }),
    );
  };

  beforeAll(async () => {
    const [host] = await lab.addHosts(1);
    agent = await startAgent(uniqueId('iso'), host!.underlay, 8, undefined, ['--netns', host!.netns]);
    networks.a = (await expectOk(api('POST', '/networks', { name: 'iso-a', cidr: '10.66.0.0/24' }), 201)).networkId;
    networks.b = (await expectOk(api('POST', '/networks', { name: 'iso-b', cidr: '10.67.0.0/24' }), 201)).networkId;
    for (const [name, network] of [
      ['a1', networks.a],
      ['a2', networks.a],
      ['b1', networks.b],
    ] as const) {
      const vm = await expectOk(createVmOn({ name, networkId: network, hostId: agent.hostId }), 201);
      vms[name] = await lab.plugVm(vm.vmId, vm.ip, host!);
    }
    await Promise.all([listen(vms.a2), listen(vms.b1)]);
    // Within a network, traffic flows once the agent has programmed it.
    await eventually(
      async () => {
        await sendUdp(vms.a1, vms.a2.ip, 'same-network', 1);
        expect(received[vms.a2.vmId]).toContain('same-network');
      },
      20_000,
      200,
    );
  }, 120_000);

  afterAll(async () => {
    await agent?.process.stop();
    await lab.destroy();
  });

  it('drops a packet from one network to a VM of another where it would be delivered, even when a route sends it there; within a network it flows', async () => {
    const host = lab.hosts[0]!.netns;
    // The route that should not exist: network A's table sends B's VM's address to its interface.
    const wrongRoute = ['route', 'add', `${vms.b1.ip}/32`, 'dev', vmInterfaceName(vms.b1.vmId), 'table', String(routingTableOf(vniOf(networks.a)))];
    const droppedBefore = await dropped();
    await run('ip', ['-n', host, ...wrongRoute]);
    try {
      await sendUdp(vms.a1, vms.b1.ip, 'across-networks', 10);
      await sendUdp(vms.a1, vms.a2.ip, 'same-network-after', 3);
      await eventually(async () => expect(received[vms.a2.vmId]).toContain('same-network-after'), 5_000, 100);
    } finally {
      await run('ip', ['-n', host, 'route', 'del', `${vms.b1.ip}/32`, 'table', String(routingTableOf(vniOf(networks.a)))]);
    }
    expect(received[vms.b1.vmId]).toEqual([]);
    expect(await dropped()).toBeGreaterThanOrEqual(droppedBefore + 10);
  });
});
