import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_CREDENTIAL_KEY_ALIAS } from '#events/tokens.ts';
import { KmsPublicKeys } from '#tokens/kms-public-keys.ts';
import { VmTokenVerifier } from '#tokens/vm-tokens.ts';
import { projectRoot } from '../../local/processes.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, expectOk, uniqueId } from '../helpers/api.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';

interface Seen {
  path: string;
  headers: http.IncomingHttpHeaders;
}

/** An external service on this machine that records every request it gets. */
async function externalService(): Promise<{ origin: string; seen: Seen[]; close(): void }> {
  const seen: Seen[] = [];
  const server = http.createServer((request, response) => {
    seen.push({ path: request.url ?? '', headers: request.headers });
    response.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${request.headers['x-stratoplane-vm-id']}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close: () => server.close() };
}

/** Runs the simulated VM's client (a separate process) against the VM's outbound proxy. */
async function fromVm(proxyUrl: string, args: string[]): Promise<{ url?: string; status: number; body: string; retryAfter?: string }[]> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'test/fixtures/egress-client.ts'), '--proxy', proxyUrl, ...args], { cwd: projectRoot });
  return stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
}

describe('VM service bridges: outbound proxy and metadata attributes', () => {
  let agent: RunningAgent;
  let vm: any;
  let allowed: Awaited<ReturnType<typeof externalService>>;
  let forbidden: Awaited<ReturnType<typeof externalService>>;
  let verifier: VmTokenVerifier;
  const proxyUrl = async () => ((await agent.status()) as any).vms[vm.vmId]?.egressProxyUrl as string;

  beforeAll(async () => {
    [allowed, forbidden] = await Promise.all([externalService(), externalService()]);
    agent = await startAgent(uniqueId('egress'), '198.51.100.181');
    const network = await expectOk(api('POST', '/networks', { name: 'egress', cidr: '10.79.0.0/24' }), 201);
    vm = await expectOk(api('POST', '/vms', { name: 'caller', networkId: network.networkId, hostId: agent.hostId }), 201);
    const account = await expectOk(api('POST', '/service-accounts', { name: 'caller' }), 201);
    await expectOk(api('PUT', `/vms/${vm.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));
    await expectOk(api('PUT', `/vms/${vm.vmId}/egress-policy`, { allow: [allowed.origin], requestsPerSecond: 2, burst: 5 }));
    const kms = new KMSClient(localAwsConfig());
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: HOST_CREDENTIAL_KEY_ALIAS }));
    verifier = new VmTokenVerifier(new KmsPublicKeys(kms, [KeyMetadata!.Arn!]));
    // The policy and the credential reach the agent through the stream, the host queue and a refresh.
    await eventually(async () => {
      const [answer] = await fromVm(await proxyUrl(), ['--url', `${allowed.origin}/ready`]);
      expect(answer!.status).toBe(200);
      expect(allowed.seen.at(-1)!.headers.authorization).toMatch(/^Bearer /);
    }, 30_000, 300);
  }, 60_000);

  afterAll(async () => {
    allowed?.close();
    forbidden?.close();
    await agent?.process.stop();
  });

  it("forwards to an allowed origin with the VM's identity and a token for that origin, whatever the VM claims", async () => {
    allowed.seen.length = 0;
    await new Promise((resolve) => setTimeout(resolve, 2600)); // a full bucket for this test
    const [answer] = await fromVm(await proxyUrl(), ['--url', `${allowed.origin}/v1/things?x=1`, '--header', 'x-stratoplane-vm-id: vm-someone-else', '--header', 'authorization: Bearer forged']);
    expect(answer).toMatchObject({ status: 200, body: `hello ${vm.vmId}` });
    const [request] = allowed.seen;
    expect(request!.path).toBe('/v1/things?x=1');
    expect(request!.headers).toMatchObject({ 'x-stratoplane-vm-id': vm.vmId, 'x-stratoplane-network-id': vm.networkId, 'x-stratoplane-host-id': agent.hostId, via: '1.1 stratoplane-bridge' });
    const token = request!.headers.authorization!.slice('Bearer '.length);
    expect(await verifier.verify(token, allowed.origin)).toMatchObject({ vmId: vm.vmId, hostId: agent.hostId, audience: allowed.origin });
  });

  it('refuses a destination outside the allow-list, and tunnels, and the destination never hears of them', async () => {
    const [refused] = await fromVm(await proxyUrl(), ['--url', `${forbidden.origin}/steal`]);
    expect(refused).toMatchObject({ status: 403, body: `${forbidden.origin} is not in this VM's egress allow-list.\n` });
    const [tunnel] = await fromVm(await proxyUrl(), ['--connect', new URL(allowed.origin).host]);
    expect(tunnel!.status).toBe(405);
    expect(forbidden.seen).toEqual([]);
  });

  it("holds a VM to its rate: past the burst it gets 429 with Retry-After, and nothing more leaves", async () => {
    await new Promise((resolve) => setTimeout(resolve, 2600));
    allowed.seen.length = 0;
    const answers = await fromVm(await proxyUrl(), ['--url', `${allowed.origin}/burst`, '--count', '12']);
    const limited = answers.filter((answer) => answer.status === 429);
    expect(answers.filter((answer) => answer.status === 200).length).toBeLessThanOrEqual(6);
    expect(limited.length).toBeGreaterThanOrEqual(6);
    expect(limited[0]!.retryAfter).toBe('1');
    expect(allowed.seen.length).toBe(answers.length - limited.length);
  });

  it("serves the VM's attributes on GCE paths, only with the metadata header, and follows changes", async () => {
    const metadataUrl = ((await agent.status()) as any).vms[vm.vmId].metadataUrl as string;
    const read = async (path: string, headers: Record<string, string> = { 'metadata-flavor': 'Stratoplane' }) => {
      const response = await fetch(`${metadataUrl}/computeMetadata/v1/instance/attributes/${path}`, { headers });
      return { status: response.status, body: await response.text() };
    };
    await expectOk(api('PUT', `/vms/${vm.vmId}/attributes`, { attributes: { role: 'worker', 'startup-script': '#!/bin/sh\necho hi' } }));
    await eventually(async () => expect(await read('role')).toEqual({ status: 200, body: 'worker' }), 30_000, 200);
    expect(await read('')).toEqual({ status: 200, body: 'role\nstartup-script\n' });
    expect((await read('startup-script')).body).toBe('#!/bin/sh\necho hi');
    // SSRF defence: a request without the header gets nothing.
    expect((await read('role', {})).status).toBe(403);
    await expectOk(api('PUT', `/vms/${vm.vmId}/attributes`, { attributes: { role: 'leader' } }));
    await eventually(async () => expect(await read('role')).toEqual({ status: 200, body: 'leader' }), 30_000, 200);
    expect((await read('startup-script')).status).toBe(404);
    const refused = await api('PUT', `/vms/${vm.vmId}/attributes`, { attributes: { 'bad key': 'x' } });
    expect(refused.status).toBe(400);
    expect(refused.body.message).toMatch(/^body\.attributes\.bad key: keys are 1-64 letters/);
  });

  it('follows policy changes: an origin taken off the list is refused from then on', async () => {
    await expectOk(api('PUT', `/vms/${vm.vmId}/egress-policy`, { allow: [forbidden.origin] }));
    await eventually(async () => expect((await fromVm(await proxyUrl(), ['--url', `${allowed.origin}/after`]))[0]!.status).toBe(403), 30_000, 300);
    const view = await expectOk(api('GET', `/vms/${vm.vmId}`));
    expect(view.egress).toEqual({ allow: [forbidden.origin], requestsPerSecond: 50, burst: 100 });
  });
});
