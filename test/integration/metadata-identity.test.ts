import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJws } from '#tokens/jws.ts';
import { DataPlaneLab, labUnavailableReason, type LabVm } from '../../local/data-plane/lab.ts';
import { projectRoot } from '../../local/processes.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { tenantToken } from '../helpers/tokens.ts';

/** A GET from inside a namespace of the lab (a VM's, or a host's). */
async function getFrom(
  netns: string,
  url: string,
  options: { localAddress?: string; flavor?: boolean } = {},
): Promise<{ status?: number; body?: string; error?: string }> {
  const args = ['netns', 'exec', netns, process.execPath, path.join(projectRoot, 'test/fixtures/http-get.mjs'), url, '--timeout', '2000'];
  if (options.flavor !== false) args.push('--header', 'metadata-flavor: Stratoplane');
  if (options.localAddress) args.push('--local-address', options.localAddress);
  const { stdout } = await promisify(execFile)('ip', args);
  return JSON.parse(stdout.trim());
}

const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`metadata identity tests skipped: ${unavailable}`);

/**
 * Two tenants' VMs on one host, with the same address in overlapping ranges: each asks
 * 169.254.169.254 (metadata on 80, its outbound proxy on 3128) and is known by the interface its
 * packets come in on.
 */
describe.skipIf(unavailable !== undefined)("a VM's metadata server and outbound proxy know it by its interface", () => {
  const lab = new DataPlaneLab(`m${process.pid % 100_000}`, '172.31.251');
  const tenants = { a: uniqueId('ida'), b: uniqueId('idb') };
  let agent: RunningAgent;
  const vms: Record<'a' | 'b', any> = {} as never;
  const labVms: Record<'a' | 'b', LabVm> = {} as never;
  const portOf = async (vmId: string) => Number(/port (\d+)/.exec(((await agent.status()) as any).vms[vmId].metadataUrl)![1]);
  const bridgeOf = async (vmId: string) => ((await agent.status()) as any).vms[vmId];
  const proxyPortOf = async (vmId: string) => Number(/port (\d+)/.exec((await bridgeOf(vmId)).egressProxyUrl)![1]);

  beforeAll(async () => {
    const [host] = await lab.addHosts(2);
    agent = await startAgent(uniqueId('mdid'), host!.underlay, 16, undefined, ['--netns', host!.netns]);
    const networks: Record<'a' | 'b', string> = {} as never;
    for (const key of ['a', 'b'] as const) {
      const token = tenantToken(tenants[key]);
      networks[key] = (await expectOk(api('POST', '/networks', { name: `same-range-${key}`, cidr: '10.94.0.0/28' }, token), 201)).networkId;
    }
    // B's VMs are made until one holds A's address (networks hand out addresses in the same order,
    // so B's first does), so no source address can tell the two apart (any others stay, unplugged).
    vms.a = await expectOk(createVmOn({ name: 'vm-a', networkId: networks.a, hostId: agent.hostId }, tenants.a), 201);
    for (let i = 0; !vms.b; i++) {
      const made = await expectOk(createVmOn({ name: `vm-b-${i}`, networkId: networks.b, hostId: agent.hostId }, tenants.b), 201);
      if (made.ip === vms.a.ip) vms.b = made;
    }
    for (const key of ['a', 'b'] as const) {
      const token = tenantToken(tenants[key]);
      const account = await expectOk(api('POST', '/service-accounts', { name: `sa-${key}` }, token), 201);
      await expectOk(api('PUT', `/vms/${vms[key].vmId}/service-account`, { serviceAccountId: account.serviceAccountId }, token));
      labVms[key] = await lab.plugVm(vms[key].vmId, vms[key].ip, host!);
    }
  }, 120_000);

  afterAll(async () => {
    await agent?.process.stop();
    await lab.destroy();
  });

  it('says how it knows VMs', async () => {
    expect(((await agent.status()) as any).vmIdentity.by).toBe('interface');
  });

  it("answers each VM at 169.254.169.254 with its own identity and token, never the other's", async () => {
    for (const key of ['a', 'b'] as const) {
      await eventually(
        async () => {
          const answer = await getFrom(labVms[key].netns, 'http://169.254.169.254/computeMetadata/v1/instance/id');
          expect(answer).toEqual({ status: 200, body: vms[key].vmId });
        },
        30_000,
        300,
      );
      let token = '';
      await eventually(
        async () => {
          const answer = await getFrom(
            labVms[key].netns,
            'http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://api.example.test',
          );
          expect(answer.status).toBe(200);
          token = answer.body!;
        },
        30_000,
        300,
      );
      expect(decodeJws(token).payload).toMatchObject({ vm: vms[key].vmId, tenant: tenants[key] });
    }
  });

  it("gives nothing to a VM that names another VM's server port, its own port directly, or another source address", async () => {
    const [portA, portB] = [await portOf(vms.a.vmId), await portOf(vms.b.vmId)];
    expect(portA).not.toBe(portB);
    for (const port of [portB, portA]) {
      const answer = await getFrom(labVms.a.netns, `http://169.254.169.254:${port}/computeMetadata/v1/instance/id`);
      expect(answer.error, `port ${port}`).toMatch(/timed out|ECONNREFUSED|ECONNRESET/);
    }
    // A source address the VM was not given: the answer has no route back to it (the network's
    // table knows only its VMs' addresses), and were it to arrive, the server answers only A's address.
    await promisify(execFile)('ip', ['-n', labVms.a.netns, 'addr', 'add', '10.94.0.200/32', 'dev', 'eth0']);
    const spoofed = await getFrom(labVms.a.netns, 'http://169.254.169.254/computeMetadata/v1/instance/id', { localAddress: '10.94.0.200' });
    expect(spoofed.error ?? `status ${spoofed.status}`).toMatch(/timed out|status 403/);
    expect(JSON.stringify(spoofed)).not.toContain(vms.b.vmId);
  });

  it("reaches its own outbound proxy at 169.254.169.254:3128, never another VM's", async () => {
    const refused = async (key: 'a' | 'b') => (await bridgeOf(vms[key].vmId)).egress.refused as number;
    const [beforeA, beforeB] = [await refused('a'), await refused('b')];
    // A request in origin form, as to a web server: the proxy answers (a forward proxy wants absolute URLs), and it is A's.
    const answer = await getFrom(labVms.a.netns, 'http://169.254.169.254:3128/', { flavor: false });
    expect(answer.status).toBe(400);
    expect(answer.body).toContain('Send absolute URLs');
    expect([await refused('a'), await refused('b')]).toEqual([beforeA + 1, beforeB]);
    // B's proxy port, or A's own, named directly: not redirected, dropped.
    for (const port of [await proxyPortOf(vms.b.vmId), await proxyPortOf(vms.a.vmId)]) {
      expect((await getFrom(labVms.a.netns, `http://169.254.169.254:${port}/`, { flavor: false })).error, `port ${port}`).toMatch(
        /timed out|ECONNREFUSED|ECONNRESET/,
      );
    }
    expect(await refused('b')).toBe(beforeB);
  });

  it('gives nothing to another host over the underlay, nor to anything in the host itself', async () => {
    const [, other] = lab.hosts;
    await promisify(execFile)('ip', ['-n', other!.netns, 'route', 'add', '169.254.169.254/32', 'via', lab.hosts[0]!.underlay]);
    const port = await portOf(vms.a.vmId);
    for (const target of ['169.254.169.254', `169.254.169.254:${port}`, '169.254.169.254:3128', `169.254.169.254:${await proxyPortOf(vms.a.vmId)}`]) {
      expect((await getFrom(other!.netns, `http://${target}/computeMetadata/v1/instance/id`)).error, target).toMatch(
        /timed out|ECONNREFUSED|ECONNRESET|EHOSTUNREACH/,
      );
      expect((await getFrom(lab.hosts[0]!.netns, `http://${target}/computeMetadata/v1/instance/id`)).error, target).toMatch(
        /timed out|ECONNREFUSED|ECONNRESET/,
      );
    }
  });
});
