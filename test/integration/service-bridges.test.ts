import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { KmsPublicKeys } from '#tokens/kms-public-keys.ts';
import { VmTokenVerifier } from '#tokens/vm-tokens.ts';
import { DataPlaneLab, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { projectRoot } from '../../local/processes.ts';
import type { TestDns } from '../fixtures/dns-server.ts';
import { type OutsideRequest, startOutsideService } from '../helpers/outside-service.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';

/** Runs the simulated VM's client (a separate process) against the VM's outbound proxy. */
/** Calls through the VM's outbound proxy from inside the VM (its namespace), at 169.254.169.254:3128 as a guest would. */
async function fromVm(vmNetns: string, args: string[]): Promise<{ url?: string; status: number; body: string; retryAfter?: string; location?: string }[]> {
  const { stdout } = await promisify(execFile)(
    'ip',
    ['netns', 'exec', vmNetns, process.execPath, '--import', 'tsx', path.join(projectRoot, 'test/fixtures/egress-client.ts'), '--proxy', GUEST_PROXY, ...args],
    { cwd: projectRoot },
  );
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

const GUEST_PROXY = 'http://169.254.169.254:3128';

const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`service-bridge egress tests skipped: ${unavailable}`);

/**
 * The outside world is a namespace of its own on the lab's underlay at 203.0.113.10 (TEST-NET-3:
 * an address no check treats as special), serving HTTPS and HTTP under names a test DNS server
 * gives; the agent sends VMs' traffic from its host's namespace, as a host sends it from its own.
 */
describe.skipIf(unavailable !== undefined)('VM service bridges: outbound proxy and metadata attributes', () => {
  const lab = new DataPlaneLab(`b${process.pid % 100_000}`, '172.31.252');
  const WORLD = '203.0.113.10';
  const allowed = { https: 'https://api.example.test', http: 'http://api.example.test' };
  const forbidden = 'https://other.example.test';
  let seen: OutsideRequest[] = [];
  let dns: TestDns;
  let agent: RunningAgent;
  let vm: any;
  let vmNetns: string;
  let verifier: VmTokenVerifier;

  beforeAll(async () => {
    const [host] = await lab.addHosts(1);
    const outside = await startOutsideService(lab, WORLD, ['api.example.test', 'other.example.test'], 'http://loopback.example.test/');
    ({ dns, seen } = outside);
    agent = await startAgent(uniqueId('egress'), host!.underlay, 32, undefined, ['--netns', host!.netns, '--dns-server', dns.server], {
      NODE_EXTRA_CA_CERTS: outside.certificates.caFile,
    });
    const network = await expectOk(api('POST', '/networks', { name: 'egress', cidr: '10.79.0.0/24' }), 201);
    vm = await expectOk(createVmOn({ name: 'caller', networkId: network.networkId, hostId: agent.hostId }), 201);
    vmNetns = (await lab.plugVm(vm.vmId, vm.ip, host!)).netns;
    const account = await expectOk(api('POST', '/service-accounts', { name: 'caller' }), 201);
    await expectOk(api('PUT', `/vms/${vm.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));
    await expectOk(api('PUT', `/vms/${vm.vmId}/egress-policy`, { allow: [allowed.https, allowed.http], requestsPerSecond: 2, burst: 5 }));
    const kms = new KMSClient(localAwsConfig());
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: keyAlias('host-credentials', deploymentFromEnvironment()) }));
    verifier = new VmTokenVerifier(new KmsPublicKeys(kms, [KeyMetadata!.Arn!]));
    // The policy and the credential reach the agent through the stream, the host queue and a refresh.
    await eventually(
      async () => {
        const [answer] = await fromVm(vmNetns, ['--url', `${allowed.https}/ready`]);
        expect(answer!.status).toBe(200);
        expect(seen.at(-1)!.headers.authorization).toMatch(/^Bearer /);
      },
      30_000,
      300,
    );
  }, 120_000);

  afterAll(async () => {
    await agent?.process.stop();
    await dns?.close();
    await lab.destroy();
  });

  it("forwards to an allowed https origin with the VM's identity and a token for that origin, whatever the VM claims or smuggles", async () => {
    seen.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 2600)); // a full bucket for this test
    const smuggled = [
      'x-stratoplane-vm-id: vm-someone-else',
      'authorization: Bearer forged',
      'metadata-flavor: Stratoplane',
      'x-forwarded-for: 10.0.0.1',
      'connection: x-private',
      'x-private: secret',
    ];
    const [answer] = await fromVm(vmNetns, ['--url', `${allowed.https}/v1/things?x=1`, ...smuggled.flatMap((header) => ['--header', header])]);
    expect(answer).toMatchObject({ status: 200, body: `hello ${vm.vmId} over https` });
    const [request] = seen;
    expect(request).toMatchObject({ scheme: 'https', path: '/v1/things?x=1' });
    expect(request!.headers).toMatchObject({
      'x-stratoplane-vm-id': vm.vmId,
      'x-stratoplane-network-id': vm.networkId,
      via: '1.1 stratoplane-bridge',
      forwarded: `for="${vm.ip}";proto=http;by=_stratoplane-bridge`,
    });
    // Nothing names the physical host, the metadata header never leaves, nor what `Connection` named.
    for (const header of ['x-stratoplane-host-id', 'metadata-flavor', 'x-forwarded-for', 'x-private']) expect(request!.headers[header]).toBeUndefined();
    expect(JSON.stringify(request!.headers)).not.toContain(agent.hostId);
    const token = request!.headers.authorization!.slice('Bearer '.length);
    expect(await verifier.verify(token, allowed.https)).toMatchObject({ vmId: vm.vmId, audience: allowed.https });
  });

  it('puts no token into a plain http:// request, where anyone on the path could read it', async () => {
    seen.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 600));
    const [answer] = await fromVm(vmNetns, ['--url', `${allowed.http}/plain`, '--header', 'authorization: Bearer mine']);
    expect(answer).toMatchObject({ status: 200, body: `hello ${vm.vmId} over http` });
    expect(seen[0]!.headers.authorization).toBeUndefined();
  });

  it('refuses a destination outside the allow-list, and tunnels, and the destination never hears of them', async () => {
    seen.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 600));
    const [refused] = await fromVm(vmNetns, ['--url', `${forbidden}/steal`]);
    expect(refused).toMatchObject({ status: 403, body: `${forbidden} is not in this VM's egress allow-list.\n` });
    const [tunnel] = await fromVm(vmNetns, ['--connect', 'api.example.test:443']);
    expect(tunnel!.status).toBe(405);
    expect(seen).toEqual([]);
  });

  it('hands a redirect back to the VM instead of following it, and a redirect into the host is refused like any request', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1100));
    dns.set('loopback.example.test', ['127.0.0.1']);
    await expectOk(
      api('PUT', `/vms/${vm.vmId}/egress-policy`, { allow: [allowed.https, allowed.http, 'http://loopback.example.test'], requestsPerSecond: 2, burst: 5 }),
    );
    const [redirect] = await fromVm(vmNetns, ['--url', `${allowed.https}/redirect`]);
    expect(redirect).toMatchObject({ status: 302, location: 'http://loopback.example.test/' });
    await eventually(
      async () => {
        const [followed] = await fromVm(vmNetns, ['--url', redirect!.location!]);
        expect(followed).toMatchObject({ status: 403, body: 'loopback.example.test resolves to 127.0.0.1 (loopback): the bridge never connects there.\n' });
      },
      30_000,
      600,
    );
    await expectOk(api('PUT', `/vms/${vm.vmId}/egress-policy`, { allow: [allowed.https, allowed.http], requestsPerSecond: 2, burst: 5 }));
  });

  it('holds a VM to its rate: past the burst it gets 429 with Retry-After, and nothing more leaves', async () => {
    await new Promise((resolve) => setTimeout(resolve, 2600));
    seen.length = 0;
    const answers = await fromVm(vmNetns, ['--url', `${allowed.https}/burst`, '--count', '12']);
    const limited = answers.filter((answer) => answer.status === 429);
    expect(answers.filter((answer) => answer.status === 200).length).toBeLessThanOrEqual(6);
    expect(limited.length).toBeGreaterThanOrEqual(6);
    expect(limited[0]!.retryAfter).toBe('1');
    expect(seen.length).toBe(answers.length - limited.length);
  });

  it("serves the VM's attributes on GCE paths, only with the metadata header, and follows changes", async () => {
    // From inside the VM, as a guest asks: 169.254.169.254 on its own interface.
    const read = async (attribute: string, headers: string[] = ['metadata-flavor: Stratoplane']) => {
      const { stdout } = await promisify(execFile)('ip', [
        'netns',
        'exec',
        vmNetns,
        process.execPath,
        path.join(projectRoot, 'test/fixtures/http-get.mjs'),
        `http://169.254.169.254/computeMetadata/v1/instance/attributes/${attribute}`,
        ...headers.flatMap((header) => ['--header', header]),
      ]);
      return JSON.parse(stdout.trim()) as { status: number; body: string };
    };
    await expectOk(api('PUT', `/vms/${vm.vmId}/attributes`, { attributes: { role: 'worker', 'startup-script': '#!/bin/sh\necho hi' } }));
    await eventually(async () => expect(await read('role')).toEqual({ status: 200, body: 'worker' }), 30_000, 200);
    expect(await read('')).toEqual({ status: 200, body: 'role\nstartup-script\n' });
    expect((await read('startup-script')).body).toBe('#!/bin/sh\necho hi');
    // SSRF defence: a request without the header gets nothing.
    expect((await read('role', [])).status).toBe(403);
    await expectOk(api('PUT', `/vms/${vm.vmId}/attributes`, { attributes: { role: 'leader' } }));
    await eventually(async () => expect(await read('role')).toEqual({ status: 200, body: 'leader' }), 30_000, 200);
    expect((await read('startup-script')).status).toBe(404);
    const refused = await api('PUT', `/vms/${vm.vmId}/attributes`, { attributes: { 'bad key': 'x' } });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toMatch(/^body\.attributes\.bad key: keys are 1-64 letters/);
  });

  it('follows policy changes: an origin taken off the list is refused from then on', async () => {
    await expectOk(api('PUT', `/vms/${vm.vmId}/egress-policy`, { allow: [forbidden] }));
    await eventually(async () => expect((await fromVm(vmNetns, ['--url', `${allowed.https}/after`]))[0]!.status).toBe(403), 30_000, 300);
    const view = await expectOk(api('GET', `/vms/${vm.vmId}`));
    expect(view.egress).toEqual({ allow: [forbidden], requestsPerSecond: 50, burst: 100 });
  });
});
