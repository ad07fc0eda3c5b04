import { execFile } from 'node:child_process';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routingTableOf, vmInterfaceName, vniOf } from '../../host-agent/data-plane/desired-state.ts';
import { macOf } from '../../host-agent/data-plane/plan-commands.ts';
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
 * A VXLAN datagram as a host would send it: network `vni`'s Ethernet frame to `toHost`'s device,
 * carrying UDP from `source` to `destination`:7100.
 */
function forgedVxlan(vni: number, toHost: string, source: string, destination: string, payload: string): Buffer {
  const data = Buffer.from(payload);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(40_000, 0);
  udp.writeUInt16BE(7100, 2);
  udp.writeUInt16BE(8 + data.length, 4);
  const ipHeader = Buffer.alloc(20);
  ipHeader.writeUInt8(0x45, 0);
  ipHeader.writeUInt16BE(20 + 8 + data.length, 2);
  ipHeader.writeUInt8(64, 8);
  ipHeader.writeUInt8(17, 9);
  Buffer.from(source.split('.').map(Number)).copy(ipHeader, 12);
  Buffer.from(destination.split('.').map(Number)).copy(ipHeader, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ipHeader.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ipHeader.writeUInt16BE(~sum & 0xffff, 10);
  const mac = (text: string) => Buffer.from(text.split(':').map((octet) => Number.parseInt(octet, 16)));
  const ethernet = Buffer.concat([mac(macOf(toHost)), mac('02:00:00:00:00:99'), Buffer.from([0x08, 0x00])]);
  const vxlan = Buffer.alloc(8);
  vxlan.writeUInt8(0x08, 0);
  vxlan.writeUIntBE(vni, 4, 3);
  return Buffer.concat([vxlan, ethernet, ipHeader, udp, data]);
}

/**
 * Two networks on one host, VMs of both plugged in: within a network traffic flows; a packet from
 * one network routed to a VM of the other (by a route that should not be there) is dropped where
 * it would be delivered, and counted (host-agent/data-plane/network-isolation.ts).
 */
describe.skipIf(unavailable !== undefined)('default deny between networks', () => {
  const lab = new DataPlaneLab(`ni${process.pid % 10_000}`, '172.31.237');
  let agent: RunningAgent;
  let otherAgent: RunningAgent;
  const vms: Record<'a1' | 'a2' | 'b1' | 'b2', LabVm> = {} as never;
  const networks: Record<'a' | 'b', string> = {} as never;
  const received: Record<string, string[]> = {};

  /** Packets the host dropped on their way to a VM of another network. */
  const dropped = async () => {
    const { stdout } = await run('ip', ['netns', 'exec', lab.hosts[0]!.netns, 'nft', '-j', 'list', 'chain', 'inet', 'stratoplane_networks', 'to_vm']);
    return (JSON.parse(stdout).nftables as { rule?: { expr: { counter?: { packets: number } }[] } }[])
      .flatMap((item) => item.rule?.expr ?? [])
      .reduce((total, expr) => total + (expr.counter?.packets ?? 0), 0);
  };
  /** Listens for UDP on port 7100 in `netns` (on `address`, else every address), lines into `received[name]`. */
  const listen = async (netns: string, name: string, address?: string) => {
    received[name] = [];
    const listener = lab.spawnIn(netns, [
      process.execPath,
      '-e',
      `const s=require('node:dgram').createSocket('udp4');s.on('message',(m)=>console.log(m.toString()));s.bind(7100,${JSON.stringify(address ?? '0.0.0.0')},()=>console.log('READY'));`,
    ]);
    const lines = readline.createInterface({ input: listener.stdout! });
    await new Promise<void>((resolve) =>
      lines.on('line', (line) => {
        if (line === 'READY') return resolve();
        received[name]!.push(line);
      }),
    );
  };

  beforeAll(async () => {
    const [host, otherHost] = await lab.addHosts(2);
    agent = await startAgent(uniqueId('iso'), host!.underlay, 8, undefined, ['--netns', host!.netns]);
    otherAgent = await startAgent(uniqueId('iso'), otherHost!.underlay, 8, undefined, ['--netns', otherHost!.netns]);
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
    const b2 = await expectOk(createVmOn({ name: 'b2', networkId: networks.b, hostId: otherAgent.hostId }), 201);
    vms.b2 = await lab.plugVm(b2.vmId, b2.ip, otherHost!);
    await Promise.all([
      listen(vms.a2.netns, vms.a2.vmId),
      listen(vms.b1.netns, vms.b1.vmId),
      listen(vms.b2.netns, vms.b2.vmId),
      listen(host!.netns, 'own host', host!.underlay),
      listen(otherHost!.netns, 'other host', otherHost!.underlay),
    ]);
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
    await otherAgent?.process.stop();
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

  it("keeps a VM off the underlay: its packets reach neither its own host's addresses nor other hosts, and a VXLAN datagram it forges into another network goes nowhere", async () => {
    // Within network B across hosts traffic flows: the tunnel works.
    await eventually(
      async () => {
        await sendUdp(vms.b1, vms.b2.ip, 'b-across-hosts', 1);
        expect(received[vms.b2.vmId]).toContain('b-across-hosts');
      },
      20_000,
      200,
    );
    const [host, otherHost] = lab.hosts as [(typeof lab.hosts)[0], (typeof lab.hosts)[0]];
    await sendUdp(vms.a1, host.underlay, 'to-own-host', 5);
    await sendUdp(vms.a1, otherHost.underlay, 'to-other-host', 5);
    // A VM of network A on host 1 forges network B's tunnel traffic to host 2, for B's VM there.
    const forged = forgedVxlan(vniOf(networks.b), otherHost.underlay, '10.67.0.250', vms.b2.ip, 'forged-into-b').toString('base64');
    const script = `const s=require('node:dgram').createSocket('udp4');s.bind(0,${JSON.stringify(vms.a1.ip)},async()=>{for(let i=0;i<5;i++){s.send(Buffer.from(${JSON.stringify(forged)},'base64'),4789,${JSON.stringify(otherHost.underlay)});await new Promise(r=>setTimeout(r,20));}setTimeout(()=>s.close(),50);});`;
    await run('ip', ['netns', 'exec', vms.a1.netns, process.execPath, '-e', script]);
    // The same into its own host's tunnel endpoint, for B's VM there.
    const forgedHere = forgedVxlan(vniOf(networks.b), host.underlay, '10.67.0.250', vms.b1.ip, 'forged-into-b').toString('base64');
    await run('ip', [
      'netns',
      'exec',
      vms.a1.netns,
      process.execPath,
      '-e',
      script.replace(forged, forgedHere).replace(JSON.stringify(otherHost.underlay), JSON.stringify(host.underlay)),
    ]);
    // Traffic sent after the abuse arrives, so the abuse had its chance to arrive too.
    await sendUdp(vms.b1, vms.b2.ip, 'b-after', 1);
    await eventually(async () => expect(received[vms.b2.vmId]).toContain('b-after'), 5_000, 100);
    expect({
      ownHost: received['own host'],
      otherHost: received['other host'],
      forged: [...received[vms.b1.vmId]!, ...received[vms.b2.vmId]!].filter((line) => line === 'forged-into-b'),
    }).toEqual({ ownHost: [], otherHost: [], forged: [] });
  });
});
