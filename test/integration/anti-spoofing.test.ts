import { execFile } from 'node:child_process';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vmInterfaceName } from '../../host-agent/data-plane/desired-state.ts';
import { VM_GATEWAY } from '../../host-agent/data-plane/plan-commands.ts';
import { macOfVm } from '../../host-agent/vm-runtime/vm-taps.ts';
import { DataPlaneLab, labUnavailableReason, type LabVm } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';

const run = promisify(execFile);
const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`anti-spoofing tests skipped: ${unavailable}`);

/** Sends `count` UDP datagrams from inside a VM's namespace, from `source` (an address the VM holds). */
async function sendUdp(vm: LabVm, source: string, to: string, payload: string, count = 5): Promise<void> {
  const script = `const s=require('node:dgram').createSocket('udp4');s.bind(0,${JSON.stringify(source)},async()=>{for(let i=0;i<${count};i++){s.send(${JSON.stringify(payload)},7100,${JSON.stringify(to)});await new Promise(r=>setTimeout(r,20));}setTimeout(()=>s.close(),50);});`;
  await run('ip', ['netns', 'exec', vm.netns, process.execPath, '-e', script]);
}

/**
 * A VM that sends as another: two lab hosts whose agents program the data plane, VM A (and C,
 * whose address A borrows) on host 1, B on host 2 listening for UDP. Honest datagrams from A reach
 * B; datagrams A sends from C's address, or with C's MAC, are dropped on host 1 where they enter
 * (anti-spoofing on every VM interface: host-agent/data-plane/anti-spoofing.ts) and counted.
 */
describe.skipIf(unavailable !== undefined)('anti-spoofing on VM interfaces', () => {
  const lab = new DataPlaneLab(`s${process.pid % 100_000}`, '172.31.245');
  let agents: RunningAgent[] = [];
  let a: LabVm;
  let b: LabVm;
  let c: LabVm;
  const received: { from: string; payload: string }[] = [];

  /** Packets host 1 dropped as sent by a VM as another: IP (IPv6 too) and ARP. */
  const dropped = async () => {
    let sum = 0;
    for (const family of ['inet', 'arp']) {
      const { stdout } = await run('ip', ['netns', 'exec', lab.hosts[0]!.netns, 'nft', '-j', 'list', 'chain', family, 'stratoplane_antispoof', 'from_vm']);
      sum += (JSON.parse(stdout).nftables as { rule?: { expr: { counter?: { packets: number } }[] } }[])
        .flatMap((item) => item.rule?.expr ?? [])
        .reduce((total, expr) => total + (expr.counter?.packets ?? 0), 0);
    }
    return sum;
  };
  const receivedPayload = (payload: string) => received.filter((datagram) => datagram.payload === payload);

  beforeAll(async () => {
    const hosts = await lab.addHosts(2);
    agents = await Promise.all(hosts.map((host, i) => startAgent(uniqueId(`as${i + 1}`), host.underlay, 8, undefined, ['--netns', host.netns])));
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'spoof', cidr: '10.98.0.0/24' }), 201);
    const vmOn = (name: string, agent: RunningAgent) => expectOk(createVmOn({ name, networkId, hostId: agent.hostId }), 201);
    const [vmA, vmB, vmC] = await Promise.all([vmOn('a', agents[0]!), vmOn('b', agents[1]!), vmOn('c', agents[0]!)]);
    [a, b, c] = await Promise.all([lab.plugVm(vmA.vmId, vmA.ip, hosts[0]!), lab.plugVm(vmB.vmId, vmB.ip, hosts[1]!), lab.plugVm(vmC.vmId, vmC.ip, hosts[0]!)]);
    const listener = lab.spawnIn(b.netns, [
      process.execPath,
      '-e',
      `const s=require('node:dgram').createSocket('udp4');s.on('message',(m,r)=>console.log(JSON.stringify({from:r.address,payload:m.toString()})));s.bind(7100,()=>console.log('READY'));`,
    ]);
    const lines = readline.createInterface({ input: listener.stdout! });
    await new Promise<void>((resolve) =>
      lines.on('line', (line) => {
        if (line === 'READY') return resolve();
        received.push(JSON.parse(line));
      }),
    );
    // Honest traffic flows once both agents have programmed the network.
    await eventually(
      async () => {
        await sendUdp(a, a.ip, b.ip, 'honest-0', 1);
        expect(receivedPayload('honest-0').length).toBeGreaterThan(0);
      },
      20_000,
      200,
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
    await lab.destroy();
  });

  it("drops what a VM sends from another VM's address, and counts it", async () => {
    const droppedBefore = await dropped();
    await run('ip', ['-n', a.netns, 'addr', 'add', `${c.ip}/32`, 'dev', 'eth0']);
    try {
      await sendUdp(a, c.ip, b.ip, 'spoofed-ip', 10);
      // The same VM, honest, right after: its datagrams get through, so the spoofed ones had every chance.
      await sendUdp(a, a.ip, b.ip, 'honest-1', 3);
      await eventually(async () => expect(receivedPayload('honest-1').length).toBeGreaterThan(0), 5_000, 100);
    } finally {
      await run('ip', ['-n', a.netns, 'addr', 'del', `${c.ip}/32`, 'dev', 'eth0']);
    }
    expect(receivedPayload('spoofed-ip')).toEqual([]);
    expect(receivedPayload('honest-1').every((datagram) => datagram.from === a.ip)).toBe(true);
    expect(await dropped()).toBeGreaterThanOrEqual(droppedBefore + 10);
  });

  it("drops what a VM sends with another VM's MAC, from its own address", async () => {
    const { stdout: hostSide } = await run('ip', ['-n', lab.hosts[0]!.netns, '-j', 'link', 'show', 'dev', vmInterfaceName(a.vmId)]);
    const droppedBefore = await dropped();
    await run('ip', ['-n', a.netns, 'link', 'set', 'eth0', 'address', macOfVm(c.vmId)]);
    // The gateway's MAC pinned in the VM (the MAC change flushed its neighbours), so the datagrams
    // leave at once: an ARP request with the borrowed MAC would itself be dropped, and they would wait.
    await run('ip', ['-n', a.netns, 'neigh', 'replace', VM_GATEWAY, 'lladdr', JSON.parse(hostSide)[0].address, 'dev', 'eth0', 'nud', 'permanent']);
    try {
      await sendUdp(a, a.ip, b.ip, 'spoofed-mac', 10);
    } finally {
      await run('ip', ['-n', a.netns, 'link', 'set', 'eth0', 'address', macOfVm(a.vmId)]);
    }
    await sendUdp(a, a.ip, b.ip, 'honest-2', 3);
    await eventually(async () => expect(receivedPayload('honest-2').length).toBeGreaterThan(0), 5_000, 100);
    expect(receivedPayload('spoofed-mac')).toEqual([]);
    expect(await dropped()).toBeGreaterThanOrEqual(droppedBefore + 10);
  });
});
