import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

/** What a destination host's data plane asks its agent before admitting a flow. */
const verifyAt = (agent: RunningAgent, destinationVmId: string, token: string) => agent.control('POST', '/connections/verify', { destinationVmId, token });

describe('network pairs: replay refused across restarts of the verifier; per-pair revocation', () => {
  const tenantId = uniqueId('pairs-tenant');
  const tenant = tenantToken(tenantId);
  const otherTenant = tenantToken(uniqueId('pairs-other'));
  let h1: RunningAgent;
  let h2: RunningAgent;
  const vms: Record<'src1' | 'src2' | 'dst' | 'dst2', any> = {} as never;

  beforeAll(async () => {
    [h1, h2] = await Promise.all([startAgent(uniqueId('prr1'), '198.51.100.186'), startAgent(uniqueId('prr2'), '198.51.100.187')]);
    const afterAgentsFirstSecond = new Promise((resolve) => setTimeout(resolve, 1_100));
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'pairs', cidr: '10.86.0.0/24' }, tenant), 201);
    for (const [name, host] of [
      ['src1', h1],
      ['src2', h1],
      ['dst', h2],
      ['dst2', h2],
    ] as const) {
      vms[name] = await expectOk(createVmOn({ name, networkId, hostId: host.hostId }, tenantId), 201);
    }
    // A first start keeps no record of used tokens, so an agent refuses tokens issued before it
    // started, and iat is in whole seconds: one minted in its first second is refused too
    // (used-tokens.ts). The tests' tokens are minted after that second.
    await afterAgentsFirstSecond;
  });

  afterAll(async () => {
    await Promise.all([h1, h2].filter(Boolean).map((agent) => agent.process.stop()));
  });

  const mint = async (from: keyof typeof vms, to: keyof typeof vms): Promise<string> =>
    (await expectOk(api('POST', `/vms/${vms[from].vmId}/connections`, { destinationVmId: vms[to].vmId }, tenant))).token;
  const revocation = (to: keyof typeof vms, from: keyof typeof vms) => `/vms/${vms[to].vmId}/pair-revocations/${vms[from].vmId}`;
  const accepted = (source: keyof typeof vms) => ({ status: 200, body: { accepted: true, sourceVmId: vms[source].vmId, sourceIp: vms[source].ip } });
  const refused = (reason: string | RegExp) => ({
    status: 403,
    body: { accepted: false, reason: typeof reason === 'string' ? reason : expect.stringMatching(reason) },
  });
  const replay = refused('token already used: a pair token admits one flow');

  let beforeRevocation: string;

  it('revoking a pair refuses its tokens already minted and any new mint for it, and leaves every other pair as it was', async () => {
    beforeRevocation = await mint('src1', 'dst');
    const otherSource = await mint('src2', 'dst');
    const otherDestination = await mint('src1', 'dst2');
    const refreshes = (await h2.status()).stats.secretRefreshes;

    const revoked = await expectOk(api('PUT', revocation('dst', 'src1'), undefined, tenant));
    expect(revoked).toEqual({ sourceVmId: vms.src1.vmId, destinationVmId: vms.dst.vmId, revokedAt: expect.any(String) });
    // Again: nothing changes.
    expect(await expectOk(api('PUT', revocation('dst', 'src1'), undefined, tenant))).toEqual(revoked);
    expect(await expectOk(api('GET', `/vms/${vms.dst.vmId}/pair-revocations`, undefined, tenant))).toEqual({ pairRevocations: [revoked] });

    const mintRefused = await api('POST', `/vms/${vms.src1.vmId}/connections`, { destinationVmId: vms.dst.vmId }, tenant);
    expect(mintRefused.status).toBe(403);
    expect(mintRefused.body.message).toMatch(`pair ${vms.src1.vmId} -> ${vms.dst.vmId} is revoked`);
    // Still valid for 5 minutes, and refused at the destination's host once its agent heard of the
    // revocation (it fetches its VMs' secrets again: a check before that would use the token up).
    const took = await eventually(async () => expect((await h2.status()).stats.secretRefreshes).toBeGreaterThan(refreshes));
    expect(took).toBeLessThan(10_000);
    expect(await verifyAt(h2, vms.dst.vmId, beforeRevocation)).toEqual(refused(`pair ${vms.src1.vmId} -> ${vms.dst.vmId} is revoked`));

    expect(await verifyAt(h2, vms.dst.vmId, otherSource)).toEqual(accepted('src2'));
    expect(await verifyAt(h2, vms.dst2.vmId, otherDestination)).toEqual(accepted('src1'));
    // The other direction is another pair.
    expect((await api('POST', `/vms/${vms.dst.vmId}/connections`, { destinationVmId: vms.src1.vmId }, tenant)).status).toBe(200);
  });

  it('another tenant can neither revoke, nor lift, nor list the pairs of a VM not its own; an operator can', async () => {
    const attempts = [
      api('PUT', revocation('dst', 'src2'), undefined, otherTenant),
      api('DELETE', revocation('dst', 'src1'), undefined, otherTenant),
      api('GET', `/vms/${vms.dst.vmId}/pair-revocations`, undefined, otherTenant),
    ];
    for (const answer of await Promise.all(attempts)) expect(answer).toMatchObject({ status: 404, body: { message: `vm ${vms.dst.vmId} not found` } });
    // Nothing changed: src1's pair still revoked, src2's still good.
    expect((await api('POST', `/vms/${vms.src1.vmId}/connections`, { destinationVmId: vms.dst.vmId }, tenant)).status).toBe(403);
    expect(await verifyAt(h2, vms.dst.vmId, await mint('src2', 'dst'))).toEqual(accepted('src2'));

    const byOperator = await expectOk(api('PUT', revocation('dst', 'src2'), undefined, operatorToken()));
    expect(byOperator).toMatchObject({ sourceVmId: vms.src2.vmId, destinationVmId: vms.dst.vmId });
    expect((await api('POST', `/vms/${vms.src2.vmId}/connections`, { destinationVmId: vms.dst.vmId }, tenant)).status).toBe(403);
    expect((await api('DELETE', revocation('dst', 'src2'), undefined, operatorToken())).status).toBe(204);
    expect((await expectOk(api('GET', `/vms/${vms.dst.vmId}/pair-revocations`, undefined, operatorToken()))).pairRevocations).toHaveLength(1);
  });

  it('lifting a revocation lets new tokens through; those minted before the revocation stay refused until they expire', async () => {
    expect((await api('DELETE', revocation('dst', 'src1'), undefined, tenant)).status).toBe(204);
    const again = await api('DELETE', revocation('dst', 'src1'), undefined, tenant);
    expect(again.status).toBe(404);
    expect(await expectOk(api('GET', `/vms/${vms.dst.vmId}/pair-revocations`, undefined, tenant))).toEqual({ pairRevocations: [] });

    await eventually(async () => expect(await verifyAt(h2, vms.dst.vmId, await mint('src1', 'dst'))).toEqual(accepted('src1')));
    expect(await verifyAt(h2, vms.dst.vmId, beforeRevocation)).toEqual(refused(`token was issued before pair ${vms.src1.vmId} -> ${vms.dst.vmId} was revoked`));
  });

  // Last: the restarts (a killed agent's pending receive can hide the next message of its queue for 30 s).
  it("refuses, after the destination's agent is killed and restarted, a token the agent before it admitted; a token never used stays good", async () => {
    const used = await mint('src1', 'dst');
    const unused = await mint('src1', 'dst');
    await eventually(async () => expect(await verifyAt(h2, vms.dst.vmId, used)).toEqual(accepted('src1')));
    expect(await verifyAt(h2, vms.dst.vmId, used)).toEqual(replay);

    // No clean stop: what was admitted had to be on disk before the answer.
    await h2.process.stop('SIGKILL');
    h2 = await startAgent(h2.hostId, h2.address);
    expect(await verifyAt(h2, vms.dst.vmId, used)).toEqual(replay);
    expect(await verifyAt(h2, vms.dst.vmId, unused)).toEqual(accepted('src1'));
    expect(await verifyAt(h2, vms.dst.vmId, unused)).toEqual(replay);
  });

  it('with its record lost, a restarted agent refuses every token issued before its start, and admits new ones', async () => {
    const before = await mint('src1', 'dst');
    await h2.process.stop();
    rmSync(path.join(tmpdir(), 'stratoplane-test-vms', h2.hostId, 'used-pair-tokens.jsonl'));
    h2 = await startAgent(h2.hostId, h2.address);
    expect(h2.stderr.join('\n')).toMatch(/no record of used pair tokens .* refusing pair tokens issued before this start until they expire/);
    expect(await verifyAt(h2, vms.dst.vmId, before)).toEqual(refused(/issued before this agent started/));
    await eventually(async () => expect(await verifyAt(h2, vms.dst.vmId, await mint('src1', 'dst'))).toEqual(accepted('src1')));
  });
});
