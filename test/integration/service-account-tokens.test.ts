import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { VM_TOKEN_TYPE } from '#events/tokens.ts';
import { decodeJws, TokenError } from '#tokens/jws.ts';
import { KeyPairJwsSigner } from '#tokens/key-pair-signer.ts';
import { KmsPublicKeys } from '#tokens/kms-public-keys.ts';
import { mintVmToken, VmTokenVerifier } from '#tokens/vm-tokens.ts';
import type { HostCredentialClaims } from '#events/tokens.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';
import { tokenFor } from '../helpers/tokens.ts';

const AUDIENCE = 'https://storage.example.com';

describe('service-account tokens', () => {
  let h1: RunningAgent;
  let h2: RunningAgent;
  /** The opaque name h1 goes by in its VMs' tokens (learnt from the first one). */
  let h1Ref = '';
  let vm: any;
  let account: any;
  let verifier: VmTokenVerifier;

  /** What a process in the VM does: ask its metadata server for an identity token. */
  const requestToken = async (agent: RunningAgent, audience = AUDIENCE, headers: Record<string, string> = { 'metadata-flavor': 'Stratoplane' }) => {
    const metadataUrl = ((await agent.status()) as any).vms[vm.vmId]?.metadataUrl;
    if (!metadataUrl) return { status: 0, body: 'no metadata server for the VM on this host' };
    const query = audience ? `?audience=${encodeURIComponent(audience)}` : '';
    const response = await fetch(`${metadataUrl}/computeMetadata/v1/instance/service-accounts/default/identity${query}`, { headers });
    return { status: response.status, body: await response.text(), cacheControl: response.headers.get('cache-control') };
  };

  beforeAll(async () => {
    [h1, h2] = await Promise.all([startAgent(uniqueId('sa1'), '198.51.100.171'), startAgent(uniqueId('sa2'), '198.51.100.172')]);
    const network = await expectOk(api('POST', '/networks', { name: 'sa', cidr: '10.80.0.0/24' }), 201);
    vm = await expectOk(createVmOn({ name: 'worker', networkId: network.networkId, hostId: h1.hostId }), 201);
    account = await expectOk(api('POST', '/service-accounts', { name: 'uploader' }), 201);
    const kms = new KMSClient(localAwsConfig());
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: keyAlias('host-credentials', deploymentFromEnvironment()) }));
    verifier = new VmTokenVerifier(new KmsPublicKeys(kms, [KeyMetadata!.Arn!]));
  });

  afterAll(async () => {
    await Promise.all([h1, h2].filter(Boolean).map((agent) => agent.process.stop()));
  });

  it('serves no token before an account is attached', async () => {
    await eventually(async () => expect((await requestToken(h1)).status).toBe(404));
  });

  it('mints tokens on the host once attached, and they verify offline through the whole chain', async () => {
    await expectOk(api('PUT', `/vms/${vm.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));
    let token = '';
    await eventually(async () => {
      const answer = await requestToken(h1);
      expect(answer.status).toBe(200);
      expect(answer.cacheControl).toBe('no-store');
      token = answer.body;
    });
    const verified = await verifier.verify(token, AUDIENCE);
    expect(verified).toMatchObject({
      serviceAccountId: account.serviceAccountId,
      tenantId: 'test-tenant',
      vmId: vm.vmId,
      hostRef: expect.stringMatching(/^hr-[0-9a-f]{20}$/),
      audience: AUDIENCE,
    });
    h1Ref = verified.hostRef;
    // The token goes to outside origins: it names the host by an opaque reference, never by id.
    const payload = decodeJws(token).payload as { cred: string };
    expect(JSON.stringify(payload) + JSON.stringify(decodeJws(payload.cred).payload)).not.toContain(h1.hostId);
    expect(verified.expiresAt - Date.now()).toBeLessThanOrEqual(10 * 60_000);

    // Minting is local: many tokens, no API call per token (the agent's counter moves, the control plane sees nothing).
    const before = ((await h1.status()) as any).tokensMinted;
    for (let i = 0; i < 20; i++) expect((await requestToken(h1)).status).toBe(200);
    expect(((await h1.status()) as any).tokensMinted - before).toBe(20);
  });

  it('refuses tokens for another audience, expired, tampered, or re-signed by a key the credential does not bind', async () => {
    const token = (await requestToken(h1)).body;
    const refused = (candidate: string, audience = AUDIENCE, now?: number) => expect(verifier.verify(candidate, audience, now)).rejects.toThrow(TokenError);
    await refused(token, 'https://elsewhere.example.com');
    await refused(token, AUDIENCE, Date.now() + 11 * 60_000);

    const jws = decodeJws(token);
    const claims = jws.payload as Record<string, unknown>;
    const [header, , signature] = token.split('.');
    await refused(`${header}.${Buffer.from(JSON.stringify({ ...claims, vm: 'vm-other' })).toString('base64url')}.${signature}`);
    // A thief with the credential but not the host's private key.
    await expect(verifier.verify(KeyPairJwsSigner.generate().signNow(VM_TOKEN_TYPE, claims), AUDIENCE)).rejects.toThrow(
      /not signed by the key its credential binds/,
    );
    // A self-made credential binding the forger's own key: consistent, but not signed by the KMS credential key.
    const forger = KeyPairJwsSigner.generate();
    const { kty, crv, x, y } = forger.publicKey.export({ format: 'jwk' });
    const forgedCredential = forger.signNow('stratoplane-host-credential+jwt', {
      ...decodeJws(claims.cred as string).payload,
      cnf: { jwk: { kty, crv, x, y } },
    });
    await expect(verifier.verify(forger.signNow(VM_TOKEN_TYPE, { ...claims, cred: forgedCredential }), AUDIENCE)).rejects.toThrow(
      /credential key .* is not trusted/,
    );
  });

  it('answers 400 without an audience and 403 without the metadata header', async () => {
    expect((await requestToken(h1, '')).status).toBe(400);
    expect((await requestToken(h1, AUDIENCE, {})).status).toBe(403);
  });

  it('stops minting at the host when the account is detached', async () => {
    await expectOk(api('DELETE', `/vms/${vm.vmId}/service-account`));
    await eventually(async () => expect((await requestToken(h1)).status).toBe(404));
  });

  it('stops minting at the old host when the VM moves, and the new host takes over', async () => {
    await expectOk(api('PUT', `/vms/${vm.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));
    await eventually(async () => expect((await requestToken(h1)).status).toBe(200));
    await expectOk(migrateVmTo(vm.vmId, h2.hostId));
    await eventually(async () => expect((await requestToken(h1)).status).toBe(0));
    let token = '';
    await eventually(async () => {
      const answer = await requestToken(h2);
      expect(answer.status).toBe(200);
      token = answer.body;
    });
    expect((await verifier.verify(token, AUDIENCE)).hostRef).not.toBe(h1Ref);
    expect(((await h1.status()) as any).serviceAccounts[vm.vmId]).toBeUndefined();
  });

  it('gives a host the VM left no credential for it, and tokens it mints under the one it held stop verifying when that ends', async () => {
    const network = await expectOk(api('POST', '/networks', { name: 'sa-left', cidr: '10.81.0.0/24' }), 201);
    const moving = await expectOk(createVmOn({ name: 'mover', networkId: network.networkId, hostId: h1.hostId }), 201);
    await expectOk(api('PUT', `/vms/${moving.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));
    // What a host that keeps minting after the VM left would do: its own key, its own credential requests.
    const oldHostKey = KeyPairJwsSigner.generate();
    const { kty, crv, x, y } = oldHostKey.publicKey.export({ format: 'jwk' });
    const oldHostToken = tokenFor('host', h1.hostId);
    const askAsOldHost = async (lifetimeSeconds?: number) =>
      (await expectOk(api('POST', `/hosts/${h1.hostId}/service-account-credentials`, { publicKey: { kty, crv, x, y }, lifetimeSeconds }, oldHostToken)))
        .credentials as { vmIds: string[]; credential: string }[];
    const LIFETIME = 8;
    const held = (await askAsOldHost(LIFETIME)).find((credential) => credential.vmIds.includes(moving.vmId))!;
    expect(held).toBeDefined();
    const claims = decodeJws(held.credential).payload as HostCredentialClaims;
    expect(claims.exp - claims.iat).toBe(LIFETIME);
    const mintAtOldHost = () => mintVmToken(oldHostKey, { credential: held.credential, claims, vmId: moving.vmId, audience: AUDIENCE }).token;
    expect((await verifier.verify(mintAtOldHost(), AUDIENCE)).hostRef).toBe(h1Ref);

    await expectOk(migrateVmTo(moving.vmId, h2.hostId));
    // Asked at once, and with the default lifetime: nothing names the VM any more.
    expect((await askAsOldHost()).some((credential) => credential.vmIds.includes(moving.vmId))).toBe(false);
    // The new host's agent mints for it, and its tokens verify.
    let fresh = '';
    await eventually(async () => {
      const metadataUrl = ((await h2.status()) as any).vms[moving.vmId]?.metadataUrl;
      const response = await fetch(`${metadataUrl}/computeMetadata/v1/instance/service-accounts/default/identity?audience=${encodeURIComponent(AUDIENCE)}`, {
        headers: { 'metadata-flavor': 'Stratoplane' },
      });
      expect(response.status).toBe(200);
      fresh = await response.text();
    });
    expect((await verifier.verify(fresh, AUDIENCE)).hostRef).not.toBe(h1Ref);

    // The old host still holds its credential: what it mints now verifies only until that ends.
    const lateToken = mintAtOldHost();
    const expiresAt = claims.exp * 1000;
    if (Date.now() < expiresAt - 500) expect((await verifier.verify(lateToken, AUDIENCE)).hostRef).toBe(h1Ref);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt - Date.now()) + 1000));
    await expect(verifier.verify(lateToken, AUDIENCE)).rejects.toThrow(/expired/);
    await expect(verifier.verify(mintAtOldHost(), AUDIENCE)).rejects.toThrow(/expired/);
    expect((await verifier.verify(fresh, AUDIENCE)).hostRef).not.toBe(h1Ref);
  });
});
