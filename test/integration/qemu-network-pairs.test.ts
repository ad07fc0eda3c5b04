import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGuestImage } from '../../local/guest-image/build.ts';
import { DataPlaneLab, type LabHost, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';
import { qemuUnavailableReason } from '../helpers/guest.ts';
import { GuestSsh } from '../helpers/guest-ssh.ts';
import { uploadImage } from '../helpers/images.ts';
import { tenantToken } from '../helpers/tokens.ts';

const run = promisify(execFile);
const unavailable = (await labUnavailableReason()) ?? qemuUnavailableReason();
if (unavailable) console.warn(`network pairs between guests skipped: ${unavailable}`);

const ECHO_PORT = 7001;
/** A line echoed by the other guest's server within 3 s: `reached`, else `dropped`. */
const probe = (label: string, ip: string) =>
  `if { echo ping; sleep 1; } | timeout 3 nc ${ip} ${ECHO_PORT} 2>/dev/null | grep -q ping; then echo "${label}: reached"; else echo "${label}: dropped"; fi`;
const echoServer = `busybox nc -ll -p ${ECHO_PORT} -e cat </dev/null >/dev/null 2>&1 &`;

/**
 * The network-pair flow between real guests on QEMU hosts: guest B (network B, which allows
 * network A) runs an echo server, and keeps trying to open a connection to guest A; guest A (network
 * A) tries B, asks its metadata server for a pair to B, and tries again. Everything each guest saw
 * is on its console (its startup script's output). Then the test logs into guest A (from a VM of
 * network A) and watches its connections to B while A stops being an allowed source, and while B
 * moves live to a third host.
 */
describe.skipIf(unavailable !== undefined)('network pairs between real guests', () => {
  const lab = new DataPlaneLab(`qp${process.pid % 10_000}`, '172.31.235');
  const tenantId = uniqueId('qpairs');
  const tenant = tenantToken(tenantId);
  const asTenant = (method: string, path: string, body?: unknown) => api(method, path, body, tenant);
  let agents: RunningAgent[] = [];
  let hosts: LabHost[] = [];
  let imageId: string;
  const networks: Record<'a' | 'b', string> = {} as never;
  let ssh: GuestSsh;
  /** The guests, once the first test made them. */
  let a: { vmId: string; ip: string };
  let b: { vmId: string; ip: string };

  beforeAll(async () => {
    hosts = await lab.addHosts(3);
    ssh = await GuestSsh.create();
    agents = await Promise.all(
      hosts.map((host) => startAgent(uniqueId('qpairs'), host.underlay, 4, undefined, ['--netns', host.netns, '--runtime', 'qemu', '--auto-placement', 'off'])),
    );
    ({ imageId } = await uploadImage('stratoplane-guest', readFileSync((await ensureGuestImage({ log: () => {} })).path), tenant));
    networks.a = (await expectOk(asTenant('POST', '/networks', { name: 'qpairs-a', cidr: '10.96.0.0/24' }), 201)).networkId;
    networks.b = (await expectOk(asTenant('POST', '/networks', { name: 'qpairs-b', cidr: '10.97.0.0/24' }), 201)).networkId;
    await expectOk(asTenant('PUT', `/networks/${networks.b}/allowed-sources/${networks.a}`));
  }, 240_000);

  afterAll(async () => {
    await ssh?.close();
    await Promise.all(agents.map((agent) => agent.process.stop()));
    await lab.destroy();
  });

  /** What the agents logged of network pairs: why a failed pair failed. */
  const pairLog = () =>
    agents
      .flatMap((agent) => agent.stderr.filter((line) => /pair|refus|unreachable/i.test(line)))
      .slice(-20)
      .join('\n');
  /** Everything that says where a pair stands: each agent's pairs and log lines about them, and each host's tables. */
  const explained = async () => {
    const parts: string[] = [];
    for (const [index, agent] of agents.entries()) {
      const status = await agent.control('GET', '/status').then(
        ({ body }) => JSON.stringify(body.networkPairs),
        (error: Error) => error.message,
      );
      const lines = agent.stderr.filter((line) => /pair|refus|unreachable|migrat|moved/i.test(line)).slice(-25);
      parts.push(`=== ${agent.hostId} (${hosts[index]!.underlay}) pairs: ${status}\n${lines.join('\n')}\n${await lab.describe(hosts[index]!)}`);
    }
    return parts.join('\n');
  };
  const consoleOf = async (vmId: string): Promise<string> => (await expectOk(asTenant('GET', `/vms/${vmId}/console`))).output.replaceAll('\r', '');

  it('drops A -> B until guest A asks for the pair, then A reaches B; B never opens a connection to A', async () => {
    // A's address is the first of its network's: B tries it from boot on, every 2 s.
    const aIp = '10.96.0.2';
    b = await expectOk(
      createVmOn(
        {
          name: 'pair-b',
          networkId: networks.b,
          hostId: agents[1]!.hostId,
          imageId,
          attributes: { 'startup-script': `${echoServer}\nwhile :; do ${probe('b to a', aIp)}; sleep 2; done` },
        },
        tenantId,
      ),
      201,
    );
    await eventually(async () => expect(await consoleOf(b.vmId)).toContain('startup script: running'), 150_000, 500);
    const script = [
      echoServer,
      probe('before', b.ip),
      // A 502 says "retry" (the control plane or B's host could not be reached): the guest does, as a client should.
      `for try in 1 2 3 4 5; do wget -q -O - --post-data '' --header 'Metadata-Flavor: Stratoplane' http://169.254.169.254/computeMetadata/v1/instance/network-pairs/${b.vmId} && break; sleep 2; done; echo`,
      probe('after', b.ip),
    ].join('\n');
    a = await expectOk(
      createVmOn(
        { name: 'pair-a', networkId: networks.a, hostId: agents[0]!.hostId, imageId, attributes: { 'startup-script': script, 'ssh-keys': ssh.sshKeys } },
        tenantId,
      ),
      201,
    );
    expect(a.ip).toBe(aIp);
    await eventually(async () => expect(await consoleOf(a.vmId)).toMatch(/startup-script: after: (reached|dropped)/), 150_000, 500);
    const seenByA = await consoleOf(a.vmId);
    console.log(
      seenByA
        .split('\n')
        .filter((line) => line.includes('startup-script:'))
        .join('\n'),
    );
    expect(seenByA).toContain('startup-script: before: dropped');
    expect(seenByA, pairLog()).toContain(`"destinationIp":"${b.ip}","via":"pair"`);
    expect(seenByA).toContain('startup-script: after: reached');
    // B kept trying after A's pair was open: two more tries, all dropped.
    const triesBefore = (await consoleOf(b.vmId)).split('b to a: ').length;
    await eventually(async () => expect((await consoleOf(b.vmId)).split('b to a: ').length).toBeGreaterThanOrEqual(triesBefore + 2), 30_000, 500);
    const seenByB = await consoleOf(b.vmId);
    expect(seenByB).toContain('b to a: dropped');
    expect(seenByB).not.toContain('b to a: reached');
  });

  /** Whether a new connection from guest A to B's echo server gets its line back (a second at most when dropped). */
  const aReachesB = async () => (await ssh.run(a, `echo ping | timeout 3 nc -w 1 ${b.ip} ${ECHO_PORT} 2>/dev/null | grep -c ping; true`)).trim() === '1';
  /** Guest A asks its metadata server for the pair to B: the answer, and wget's exit status. */
  const askForPair = () =>
    ssh.run(
      a,
      `wget -q -O - --post-data '' --header 'Metadata-Flavor: Stratoplane' http://169.254.169.254/computeMetadata/v1/instance/network-pairs/${b.vmId} 2>&1; echo " exit=$?"`,
    );
  /** Lines B's echo server sent back on guest A's one long connection (a line every 200 ms while it flows). */
  const echoedOnOpenConnection = async () => Number((await ssh.run(a, 'wc -l < /tmp/open-connection')).trim());
  const flowsOnOpenConnection = async () => {
    const before = await echoedOnOpenConnection();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    return (await echoedOnOpenConnection()) - before;
  };

  it('stops new connections within 5 s once network A is no longer an allowed source; the open one flows on, until its token expires at the latest', async () => {
    // The jump VM: a VM of network A on A's host (a namespace, no guest), the test's way into guest A.
    const jump = await expectOk(createVmOn({ name: 'pairs-jump', networkId: networks.a, hostId: agents[0]!.hostId }, tenantId), 201);
    const jumpVm = await lab.plugVm(jump.vmId, jump.ip, hosts[0]!);
    await ssh.connect(a, jumpVm.netns, (method, path) => asTenant(method, path));
    expect(await aReachesB()).toBe(true);
    await ssh.run(
      a,
      `sh -c '{ while :; do echo tick; sleep 0.2; done; } | nc ${b.ip} ${ECHO_PORT} > /tmp/open-connection 2>&1' < /dev/null > /dev/null 2>&1 &`,
    );
    await eventually(async () => expect(await echoedOnOpenConnection()).toBeGreaterThan(3), 10_000, 250);
    // A host trusts a token minted after its listing of allowed sources was asked for: the pair's
    // token must be older than the listing the removal brings.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await expectOk(asTenant('DELETE', `/networks/${networks.b}/allowed-sources/${networks.a}`), 204);
    const disallowed = Date.now();
    await eventually(async () => expect(await aReachesB()).toBe(false), 5_000, 100);
    const stoppedAfter = Date.now() - disallowed;
    console.log(`allowed source removed -> guest A's new connections dropped: ${stoppedAfter} ms`);
    expect(stoppedAfter).toBeLessThan(5_000);
    expect(await flowsOnOpenConnection()).toBeGreaterThan(3);
    // The open connection lasts until the token the pair was admitted with expires, and no longer:
    // that is when B's host lets its entry go.
    const destination = (await agents[1]!.control('GET', '/status')).body.networkPairs.admitted;
    expect(destination).toEqual([expect.objectContaining({ sourceVmId: a.vmId, newConnections: false })]);
    const tokenExpiresInSeconds = (Date.parse(destination[0].until) - Date.now()) / 1000;
    const liveEntry = (await run('ip', ['netns', 'exec', hosts[1]!.netns, 'nft', 'list', 'set', 'inet', 'stratoplane_networks', 'live_pairs'])).stdout;
    expect(liveEntry).toContain(`${a.ip} . ${b.ip}`);
    expect(secondsUntilExpiry(liveEntry)).toBeLessThanOrEqual(tokenExpiresInSeconds + 1);
    expect(await askForPair()).toMatch(/403 Forbidden.* exit=1/s);

    // Allowed again: A asks again, and opens new connections.
    await expectOk(asTenant('PUT', `/networks/${networks.b}/allowed-sources/${networks.a}`));
    await eventually(async () => expect(await askForPair()).toContain(`"destinationIp":"${b.ip}","via":"pair"`), 15_000, 1_000);
    expect(await aReachesB()).toBe(true);
  }, 240_000);

  it('follows B when it moves live to a third host: its old host tells A’s, which gets a new token; A reaches B there, and its open connection carries on', async () => {
    const openBefore = await flowsOnOpenConnection();
    const moved = Date.now();
    await expectOk(migrateVmTo(b.vmId, agents[2]!.hostId));
    await eventually(
      async () => expect(await expectOk(asTenant('GET', `/vms/${b.vmId}`))).toMatchObject({ hostId: agents[2]!.hostId, state: 'running' }),
      120_000,
      500,
    );
    const arrived = Date.now() - moved;
    try {
      await eventually(async () => expect(await aReachesB()).toBe(true), 60_000, 250);
    } catch (error) {
      console.error(`B running at its new host ${arrived} ms after the move was asked for; A has not reached it since\n${await explained()}`);
      throw error;
    }
    console.log(`migration started -> guest A reaches B at its new host: ${Date.now() - moved} ms (B ran there after ${arrived} ms)`);
    const [source, oldHost, newHost] = await Promise.all(agents.map((agent) => agent.control('GET', '/status')));
    expect(source!.body.networkPairs.opened).toEqual([expect.objectContaining({ destinationVmId: b.vmId, destinationHost: hosts[2]!.underlay })]);
    expect(oldHost!.body.networkPairs.admitted).toEqual([]);
    expect(newHost!.body.networkPairs.admitted).toEqual([expect.objectContaining({ sourceVmId: a.vmId, sourceHost: hosts[0]!.underlay })]);
    // The connection A opened before the move carries on: B's new host admits the pair's packets
    // mid-stream (its conntrack takes the connection up as new), once TCP's retransmission gets there.
    const carriedOn = Date.now();
    await eventually(async () => expect(await flowsOnOpenConnection()).toBeGreaterThan(3), 20_000, 0);
    console.log(`guest A's open connection: ${openBefore} lines in 1.5 s before the move; flowing again ${Date.now() - carriedOn} ms after A reached B anew`);
  }, 240_000);
});

/** When the (one) element of an `nft list set` output expires, in seconds from now. */
function secondsUntilExpiry(listing: string): number {
  const match = /expires (?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?/.exec(listing);
  if (!match) throw new Error(`no expiring element in ${listing}`);
  return Number(match[1] ?? 0) * 60 + Number(match[2] ?? 0) + Number(match[3] ?? 0) / 1000;
}
