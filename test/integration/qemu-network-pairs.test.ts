import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGuestImage } from '../../local/guest-image/build.ts';
import { DataPlaneLab, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { qemuUnavailableReason } from '../helpers/guest.ts';
import { uploadImage } from '../helpers/images.ts';
import { tenantToken } from '../helpers/tokens.ts';

const unavailable = (await labUnavailableReason()) ?? qemuUnavailableReason();
if (unavailable) console.warn(`network pairs between guests skipped: ${unavailable}`);

const ECHO_PORT = 7001;
/** A line echoed by the other guest's server within 3 s: `reached`, else `dropped`. */
const probe = (label: string, ip: string) =>
  `if { echo ping; sleep 1; } | timeout 3 nc ${ip} ${ECHO_PORT} 2>/dev/null | grep -q ping; then echo "${label}: reached"; else echo "${label}: dropped"; fi`;
const echoServer = `busybox nc -ll -p ${ECHO_PORT} -e cat </dev/null >/dev/null 2>&1 &`;

/**
 * The network-pair flow between real guests on two QEMU hosts: guest B (network B, which allows
 * network A) runs an echo server, and keeps trying to open a connection to guest A; guest A (network
 * A) tries B, asks its metadata server for a pair to B, and tries again. Everything each guest saw
 * is on its console (its startup script's output).
 */
describe.skipIf(unavailable !== undefined)('network pairs between real guests', () => {
  const lab = new DataPlaneLab(`qp${process.pid % 10_000}`, '172.31.235');
  const tenantId = uniqueId('qpairs');
  const tenant = tenantToken(tenantId);
  const asTenant = (method: string, path: string, body?: unknown) => api(method, path, body, tenant);
  let agents: RunningAgent[] = [];
  let imageId: string;
  const networks: Record<'a' | 'b', string> = {} as never;

  beforeAll(async () => {
    const hosts = await lab.addHosts(2);
    agents = await Promise.all(hosts.map((host) => startAgent(uniqueId('qpairs'), host.underlay, 4, undefined, ['--netns', host.netns, '--runtime', 'qemu'])));
    ({ imageId } = await uploadImage('stratoplane-guest', readFileSync((await ensureGuestImage({ log: () => {} })).path), tenant));
    networks.a = (await expectOk(asTenant('POST', '/networks', { name: 'qpairs-a', cidr: '10.96.0.0/24' }), 201)).networkId;
    networks.b = (await expectOk(asTenant('POST', '/networks', { name: 'qpairs-b', cidr: '10.97.0.0/24' }), 201)).networkId;
    await expectOk(asTenant('PUT', `/networks/${networks.b}/allowed-sources/${networks.a}`));
  }, 240_000);

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
    await lab.destroy();
  });

  const consoleOf = async (vmId: string): Promise<string> => (await expectOk(asTenant('GET', `/vms/${vmId}/console`))).output.replaceAll('\r', '');

  it('drops A -> B until guest A asks for the pair, then A reaches B; B never opens a connection to A', async () => {
    // A's address is the first of its network's: B tries it from boot on, every 2 s.
    const aIp = '10.96.0.2';
    const b = await expectOk(
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
      `wget -q -O - --post-data '' --header 'Metadata-Flavor: Stratoplane' http://169.254.169.254/computeMetadata/v1/instance/network-pairs/${b.vmId}; echo`,
      probe('after', b.ip),
    ].join('\n');
    const a = await expectOk(
      createVmOn({ name: 'pair-a', networkId: networks.a, hostId: agents[0]!.hostId, imageId, attributes: { 'startup-script': script } }, tenantId),
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
    expect(seenByA).toContain(`"destinationIp":"${b.ip}","via":"pair"`);
    expect(seenByA).toContain('startup-script: after: reached');
    // B kept trying after A's pair was open: two more tries, all dropped.
    const triesBefore = (await consoleOf(b.vmId)).split('b to a: ').length;
    await eventually(async () => expect((await consoleOf(b.vmId)).split('b to a: ').length).toBeGreaterThanOrEqual(triesBefore + 2), 30_000, 500);
    const seenByB = await consoleOf(b.vmId);
    expect(seenByB).toContain('b to a: dropped');
    expect(seenByB).not.toContain('b to a: reached');
  });
});
