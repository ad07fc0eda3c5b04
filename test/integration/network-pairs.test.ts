import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PAIR_PORT } from '../../host-agent/pair-peers.ts';
import { DataPlaneLab, labUnavailableReason, type LabHost, type LabVm } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';

const run = promisify(execFile);
const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`network pair tests skipped: ${unavailable}`);

/** Runs a node script inside a namespace; its stdout, trimmed. */
async function inNetns(netns: string, script: string): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { timeout: 20_000 });
  return stdout.trim();
}

/** Whether a new TCP connection from `vm` to `ip:port` gets its line echoed within `ms`. */
async function connects(vm: LabVm, ip: string, port: number, ms = 1_500): Promise<boolean> {
  const script = `const s=require('node:net').connect({host:${JSON.stringify(ip)},port:${port},localAddress:${JSON.stringify(vm.ip)}});s.setEncoding('utf8');const t=setTimeout(()=>{console.log('TIMEOUT');process.exit(0)},${ms});s.on('connect',()=>s.write('ping\\n'));s.on('data',d=>{if(d.includes('ping')){console.log('OK');clearTimeout(t);s.destroy()}});s.on('error',e=>{console.log('ERR '+e.code);clearTimeout(t)});`;
  return (await inNetns(vm.netns, script)) === 'OK';
}

/** A VM's request to its metadata server at 169.254.169.254: status and body. */
async function metadata(vm: LabVm, method: string, path: string): Promise<{ status: number; body: any }> {
  const script = `const r=require('node:http').request({host:'169.254.169.254',path:${JSON.stringify(path)},method:${JSON.stringify(method)},localAddress:${JSON.stringify(vm.ip)},headers:{'Metadata-Flavor':'Stratoplane'}},res=>{let b='';res.setEncoding('utf8');res.on('data',c=>b+=c);res.on('end',()=>console.log(JSON.stringify({status:res.statusCode,body:b})))});r.on('error',e=>console.log(JSON.stringify({status:0,body:e.message})));r.end();`;
  const { status, body } = JSON.parse(await inNetns(vm.netns, script)) as { status: number; body: string };
  try {
    return { status, body: JSON.parse(body) };
  } catch {
    return { status, body };
  }
}

/** Presents a pair token to a host's agent from inside `netns` (as the host whose namespace it is, or an impostor). */
async function present(netns: string, host: string, destinationVmId: string, token: string): Promise<{ status: number; body: any }> {
  const body = JSON.stringify({ destinationVmId, token });
  const script = `const r=require('node:http').request({host:${JSON.stringify(host)},port:${PAIR_PORT},path:'/v1/pairs',method:'POST',headers:{'content-type':'application/json'}},res=>{let b='';res.setEncoding('utf8');res.on('data',c=>b+=c);res.on('end',()=>console.log(JSON.stringify({status:res.statusCode,body:JSON.parse(b)})))});r.on('error',e=>console.log(JSON.stringify({status:0,body:e.message})));r.end(${JSON.stringify(body)});`;
  return JSON.parse(await inNetns(netns, script));
}

/**
 * The network-pair flow end to end on the data plane: a VM of network A asks its metadata server
 * for a pair to a VM of network B (which allows A); the source host's agent gets the token from the
 * control plane, presents it to the destination host's agent over the underlay, which admits the
 * flow in nftables, and the source host routes it through the pair tunnel.
 */
describe.skipIf(unavailable !== undefined)('network pairs on real traffic', () => {
  const lab = new DataPlaneLab(`np${process.pid % 10_000}`, '172.31.236');
  let agents: RunningAgent[] = [];
  let hosts: LabHost[] = [];
  const vms: Record<'a1' | 'b1' | 'c1', LabVm> = {} as never;
  const networks: Record<'a' | 'b' | 'c', string> = {} as never;
  const ECHO_PORT = 7200;

  beforeAll(async () => {
    hosts = await lab.addHosts(3);
    agents = await Promise.all(hosts.map((host) => startAgent(uniqueId('pairs'), host.underlay, 8, undefined, ['--netns', host.netns])));
    const afterAgentsFirstSecond = new Promise((resolve) => setTimeout(resolve, 1_100));
    networks.a = (await expectOk(api('POST', '/networks', { name: 'pairs-a', cidr: '10.93.0.0/24' }), 201)).networkId;
    networks.b = (await expectOk(api('POST', '/networks', { name: 'pairs-b', cidr: '10.94.0.0/24' }), 201)).networkId;
    networks.c = (await expectOk(api('POST', '/networks', { name: 'pairs-c', cidr: '10.95.0.0/24' }), 201)).networkId;
    await expectOk(api('PUT', `/networks/${networks.b}/allowed-sources/${networks.a}`));
    for (const [name, network, host] of [
      ['a1', networks.a, 0],
      ['c1', networks.c, 0],
      ['b1', networks.b, 1],
    ] as const) {
      const vm = await expectOk(createVmOn({ name, networkId: network, hostId: agents[host]!.hostId }), 201);
      vms[name] = await lab.plugVm(vm.vmId, vm.ip, hosts[host]!);
    }
    await Promise.all([lab.startProbe(vms.b1, ['echo', String(ECHO_PORT)]), lab.startProbe(vms.a1, ['echo', String(ECHO_PORT)])]);
    // Each VM's metadata server answers once its agent has set its bridge up.
    await eventually(async () => expect((await metadata(vms.a1, 'GET', '/computeMetadata/v1/instance/id')).body).toBe(vms.a1.vmId), 20_000, 200);
    await afterAgentsFirstSecond;
  }, 120_000);

  /** A failed wait's error, with every host's data plane and the involved agents' logs: what a flaky failure leaves to go on. */
  const explained = (involved: RunningAgent[]) => async (error: Error) => {
    const states = await Promise.all(hosts.map((host) => lab.describe(host)));
    const logs = involved.map((agent) => `--- agent ${agent.hostId}\n${agent.stderr.slice(-40).join('\n')}`);
    throw new Error(`${error.message}\n${[...states, ...logs].join('\n')}`);
  };

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
    await lab.destroy();
  });

  it('drops A -> B before the pair; after the VM asks for it, A opens connections to B and B still cannot open one to A', async () => {
    expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(false);
    const asked = Date.now();
    const opened = await metadata(vms.a1, 'POST', `/computeMetadata/v1/instance/network-pairs/${vms.b1.vmId}`);
    expect(opened).toMatchObject({ status: 200, body: { destinationVmId: vms.b1.vmId, destinationIp: vms.b1.ip, via: 'pair' } });
    // The VM never sees the token.
    expect(JSON.stringify(opened.body)).not.toMatch(/token/i);
    expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(true);
    console.log(`metadata request -> first connection echoed: ${Date.now() - asked} ms`);
    // One direction of initiation: B answers A, but cannot open a connection to A with A's pair.
    expect(await connects(vms.b1, vms.a1.ip, ECHO_PORT)).toBe(false);
    // Both agents say what they hold.
    const [source, destination] = await Promise.all(agents.map((agent) => agent.control('GET', '/status')));
    expect(source!.body.networkPairs.opened).toEqual([
      expect.objectContaining({ sourceVmId: vms.a1.vmId, destinationVmId: vms.b1.vmId, destinationHost: hosts[1]!.underlay }),
    ]);
    expect(destination!.body.networkPairs.admitted).toEqual([
      expect.objectContaining({ sourceVmId: vms.a1.vmId, destinationVmId: vms.b1.vmId, sourceHost: hosts[0]!.underlay }),
    ]);
  });

  it('gives no pair to a network B does not allow, nor to a VM that does not exist, and routes nothing for them', async () => {
    const refused = await metadata(vms.c1, 'POST', `/computeMetadata/v1/instance/network-pairs/${vms.b1.vmId}`);
    expect(refused.status).toBe(403);
    expect(await connects(vms.c1, vms.b1.ip, ECHO_PORT)).toBe(false);
    const unknown = await metadata(vms.a1, 'POST', '/computeMetadata/v1/instance/network-pairs/vm-000000000000');
    expect(unknown.status).toBe(404);
  });

  it('admits a token only from the host it was issued for, and only once', async () => {
    // The tenant may mint the pair's token itself (the API route); the VM's host is its source host.
    const connection = await expectOk(api('POST', `/vms/${vms.a1.vmId}/connections`, { destinationVmId: vms.b1.vmId }));
    const impostor = await present(hosts[2]!.netns, hosts[1]!.underlay, vms.b1.vmId, connection.token);
    expect(impostor.status).toBe(403);
    expect(impostor.body.message).toContain(`issued for host ${hosts[0]!.underlay}`);
    // Refused before it was spent: the right host still can, once.
    expect((await present(hosts[0]!.netns, hosts[1]!.underlay, vms.b1.vmId, connection.token)).status).toBe(200);
    const replay = await present(hosts[0]!.netns, hosts[1]!.underlay, vms.b1.vmId, connection.token);
    expect(replay.status).toBe(403);
    // A token for another VM than the one named.
    expect((await present(hosts[0]!.netns, hosts[1]!.underlay, vms.a1.vmId, connection.token)).status).toBe(404);
  });

  it('stops new and open connections of a revoked pair within seconds, and the VM cannot open it again', async () => {
    const probe = await lab.startProbe(vms.a1, ['probe-tcp', vms.b1.ip, String(ECHO_PORT), '20']);
    await eventually(async () => expect((await probe.report()).tcp.received).toBeGreaterThan(5), 10_000, 200);
    await expectOk(api('PUT', `/vms/${vms.b1.vmId}/pair-revocations/${vms.a1.vmId}`));
    const revoked = Date.now();
    await eventually(
      async () => {
        await probe.report(true);
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect((await probe.report()).tcp.received).toBe(0);
      },
      5_000,
      100,
    );
    console.log(`revoked -> open connection silent: ${Date.now() - revoked} ms`);
    expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(false);
    expect((await metadata(vms.a1, 'POST', `/computeMetadata/v1/instance/network-pairs/${vms.b1.vmId}`)).status).toBe(403);
    await expectOk(api('DELETE', `/vms/${vms.b1.vmId}/pair-revocations/${vms.a1.vmId}`), 204);
    // Lifted, once the destination's host heard of it (seconds), the pair opens again.
    await eventually(
      async () => expect((await metadata(vms.a1, 'POST', `/computeMetadata/v1/instance/network-pairs/${vms.b1.vmId}`)).status).toBe(200),
      10_000,
      500,
    );
    expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(true);
  });

  it('stops new connections within seconds once the source network is no longer allowed; open ones keep flowing until the token expires', async () => {
    const probe = await lab.startProbe(vms.a1, ['probe-tcp', vms.b1.ip, String(ECHO_PORT), '20']);
    await eventually(async () => expect((await probe.report()).tcp.received).toBeGreaterThan(5), 10_000, 200);
    // A host trusts a token minted after its listing of allowed sources was asked for (the source may
    // have been allowed since): the pair's token must be older than the listing the removal brings.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await api('DELETE', `/networks/${networks.b}/allowed-sources/${networks.a}`)).status).toBe(204);
    const disallowed = Date.now();
    await eventually(async () => expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT, 800)).toBe(false), 5_000, 100);
    console.log(`allowed source removed -> new connections dropped: ${Date.now() - disallowed} ms`);
    await probe.report(true);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const open = await probe.report();
    expect(open.tcp).toMatchObject({ connected: true, closed: false });
    expect(open.tcp.received).toBeGreaterThan(10);
    const destination = await agents[1]!.control('GET', '/status');
    expect(destination.body.networkPairs.admitted).toEqual([expect.objectContaining({ sourceVmId: vms.a1.vmId, newConnections: false })]);
    expect((await metadata(vms.a1, 'POST', `/computeMetadata/v1/instance/network-pairs/${vms.b1.vmId}`)).status).toBe(403);
    // Allowed again, the VM asks again and opens new connections.
    await expectOk(api('PUT', `/networks/${networks.b}/allowed-sources/${networks.a}`));
    await eventually(
      async () => expect((await metadata(vms.a1, 'POST', `/computeMetadata/v1/instance/network-pairs/${vms.b1.vmId}`)).status).toBe(200),
      10_000,
      1_000,
    );
    expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(true);
  });

  it('keeps its pairs across SIGKILLed agents: traffic flows meanwhile, and the agents after them take the pairs over (a revocation still stops it)', async () => {
    const probe = await lab.startProbe(vms.a1, ['probe-tcp', vms.b1.ip, String(ECHO_PORT), '20']);
    await eventually(async () => expect((await probe.report()).tcp.received).toBeGreaterThan(5), 10_000, 200);
    await Promise.all(agents.slice(0, 2).map((agent) => agent.process.stop('SIGKILL')));
    await probe.report(true);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await probe.report()).tcp.received).toBeGreaterThan(5);
    agents.splice(
      0,
      2,
      ...(await Promise.all(
        agents.slice(0, 2).map((agent, index) => startAgent(agent.hostId, hosts[index]!.underlay, 8, undefined, ['--netns', hosts[index]!.netns])),
      )),
    );
    const [source, destination] = await Promise.all(agents.slice(0, 2).map((agent) => agent.control('GET', '/status')));
    expect(source!.body.networkPairs.opened).toEqual([expect.objectContaining({ sourceVmId: vms.a1.vmId, destinationVmId: vms.b1.vmId })]);
    expect(destination!.body.networkPairs.admitted).toEqual([expect.objectContaining({ sourceVmId: vms.a1.vmId, destinationVmId: vms.b1.vmId })]);
    // New connections too, once the new agents have programmed their hosts again.
    await eventually(async () => expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(true), 10_000, 200).catch(explained(agents.slice(0, 2)));
    // The new destination agent withdraws what the one before it admitted, when it is revoked. The
    // news may take up to the queue's 30 s visibility timeout more: a message handed to the killed
    // agent's long poll (still open at the queue) comes back only then.
    await expectOk(api('PUT', `/vms/${vms.b1.vmId}/pair-revocations/${vms.a1.vmId}`));
    await eventually(async () => expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT, 800)).toBe(false), 60_000, 500);
    await expectOk(api('DELETE', `/vms/${vms.b1.vmId}/pair-revocations/${vms.a1.vmId}`), 204);
    await eventually(
      async () => expect((await metadata(vms.a1, 'POST', `/computeMetadata/v1/instance/network-pairs/${vms.b1.vmId}`)).status).toBe(200),
      15_000,
      1_000,
    );
  });

  it('follows a destination that moves: its old host tells the source host, which gets a new token, and connections reach it at its new host', async () => {
    expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(true);
    await lab.moveVm(vms.b1.vmId, hosts[2]!);
    const moved = Date.now();
    await expectOk(migrateVmTo(vms.b1.vmId, agents[2]!.hostId));
    await eventually(async () => expect(await connects(vms.a1, vms.b1.ip, ECHO_PORT)).toBe(true), 30_000, 200).catch(explained(agents));
    console.log(`moved -> connections reach the destination at its new host: ${Date.now() - moved} ms`);
    const [source, oldHost, newHost] = await Promise.all(agents.map((agent) => agent.control('GET', '/status')));
    expect(source!.body.networkPairs.opened).toEqual([expect.objectContaining({ destinationVmId: vms.b1.vmId, destinationHost: hosts[2]!.underlay })]);
    expect(oldHost!.body.networkPairs.admitted).toEqual([]);
    expect(newHost!.body.networkPairs.admitted).toEqual([expect.objectContaining({ sourceVmId: vms.a1.vmId, sourceHost: hosts[0]!.underlay })]);
  });
});
