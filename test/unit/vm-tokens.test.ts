import { describe, expect, it } from 'vitest';
import { HOST_CREDENTIAL_TYPE } from '#events/tokens.ts';
import { HOST_CREDENTIAL_SECONDS, issueHostCredential } from '#tokens/host-credentials.ts';
import { SECRETS_RENEWAL_MS } from '../../host-agent/agent.ts';
import { TokenError, type PublicKeySource } from '#tokens/jws.ts';
import { KeyPairJwsSigner } from '#tokens/key-pair-signer.ts';
import { mintVmToken, VM_TOKEN_SECONDS, VmTokenVerifier } from '#tokens/vm-tokens.ts';

/** Stands in for the KMS credential key: same algorithm, key held here. */
const credentialKey = KeyPairJwsSigner.generate();
const trusted: PublicKeySource = { isTrusted: (kid) => kid === credentialKey.kid, get: async () => credentialKey.publicKey };
const host = KeyPairJwsSigner.generate();
const { kty, crv, x, y } = host.publicKey.export({ format: 'jwk' });
const hostPublicKey = { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y! };

async function credentialFor(vmIds: string[], now = Date.now()) {
  return issueHostCredential(credentialKey, { serviceAccountId: 'sa-1', tenantId: 't-1', hostRef: 'hr-1', vmIds, hostPublicKey, now });
}

describe('VM tokens', () => {
  it('verifies a token minted under a credential, and never lets it outlive the credential', async () => {
    const now = Date.now();
    const { credential, claims } = await credentialFor(['vm-1'], now - (HOST_CREDENTIAL_SECONDS - 120) * 1000);
    const { token, expiresAt } = mintVmToken(host, { credential, claims, vmId: 'vm-1', audience: 'aud', now });
    expect(expiresAt).toBe(claims.exp * 1000);
    expect(expiresAt - now).toBeLessThan(VM_TOKEN_SECONDS * 1000);
    expect(await new VmTokenVerifier(trusted).verify(token, 'aud', now)).toMatchObject({
      serviceAccountId: 'sa-1',
      tenantId: 't-1',
      vmId: 'vm-1',
      hostRef: 'hr-1',
    });
  });

  it('refuses a token for a VM its credential does not name', async () => {
    const { credential, claims } = await credentialFor(['vm-1']);
    const { token } = mintVmToken(host, { credential, claims, vmId: 'vm-2', audience: 'aud' });
    await expect(new VmTokenVerifier(trusted).verify(token, 'aud')).rejects.toThrow(/does not cover vm vm-2/);
  });

  it('refuses tokens whose credential expired, even one already verified and cached', async () => {
    const verifier = new VmTokenVerifier(trusted);
    const { credential, claims } = await credentialFor(['vm-1']);
    const { token } = mintVmToken(host, { credential, claims, vmId: 'vm-1', audience: 'aud' });
    await verifier.verify(token, 'aud');
    await expect(verifier.verify(token, 'aud', (claims.exp + 1) * 1000)).rejects.toThrow(/credential expired/);
    await expect(new VmTokenVerifier(trusted).verify(token, 'aud', (claims.exp + 1) * 1000)).rejects.toThrow(TokenError);
  });

  it('refuses a credential with a longer lifetime than allowed, even when properly signed', async () => {
    const { claims } = await credentialFor(['vm-1']);
    const credential = credentialKey.signNow(HOST_CREDENTIAL_TYPE, { ...claims, exp: claims.iat + HOST_CREDENTIAL_SECONDS + 3600 });
    const { token } = mintVmToken(host, { credential, claims: { ...claims, exp: claims.iat + HOST_CREDENTIAL_SECONDS + 3600 }, vmId: 'vm-1', audience: 'aud' });
    await expect(new VmTokenVerifier(trusted).verify(token, 'aud')).rejects.toThrow(/lifetime is longer than allowed/);
  });

  it('lets a host credential live at most an hour, renewed by the agent well before it ends', async () => {
    expect(HOST_CREDENTIAL_SECONDS).toBeLessThanOrEqual(3600);
    const now = Date.now();
    const { claims } = await credentialFor(['vm-1'], now);
    expect(claims.exp - claims.iat).toBe(HOST_CREDENTIAL_SECONDS);
    // The agent renews at half the credential's life at the latest, so renewals that fail leave it time.
    expect(SECRETS_RENEWAL_MS).toBeLessThanOrEqual((HOST_CREDENTIAL_SECONDS * 1000) / 2);
    // A credential signed for two hours is refused, however properly signed.
    const twoHours = { ...claims, exp: claims.iat + 2 * 3600 };
    const credential = credentialKey.signNow(HOST_CREDENTIAL_TYPE, twoHours);
    const { token } = mintVmToken(host, { credential, claims: twoHours, vmId: 'vm-1', audience: 'aud', now });
    await expect(new VmTokenVerifier(trusted).verify(token, 'aud', now)).rejects.toThrow(/lifetime is longer than allowed/);
  });

  it('issues a shorter credential when asked, never a longer one, and tokens under it stop verifying when it ends', async () => {
    const now = Date.now();
    const short = await issueHostCredential(credentialKey, {
      serviceAccountId: 'sa-1',
      tenantId: 't-1',
      hostRef: 'hr-1',
      vmIds: ['vm-1'],
      hostPublicKey,
      lifetimeSeconds: 5,
      now,
    });
    expect(short.claims.exp - short.claims.iat).toBe(5);
    const long = await issueHostCredential(credentialKey, {
      serviceAccountId: 'sa-1',
      tenantId: 't-1',
      hostRef: 'hr-1',
      vmIds: ['vm-1'],
      hostPublicKey,
      lifetimeSeconds: 24 * 3600,
      now,
    });
    expect(long.claims.exp - long.claims.iat).toBe(HOST_CREDENTIAL_SECONDS);
    const { token, expiresAt } = mintVmToken(host, { credential: short.credential, claims: short.claims, vmId: 'vm-1', audience: 'aud', now });
    expect(expiresAt).toBe(short.claims.exp * 1000);
    const verifier = new VmTokenVerifier(trusted);
    await expect(verifier.verify(token, 'aud', now)).resolves.toMatchObject({ vmId: 'vm-1' });
    await expect(verifier.verify(token, 'aud', (short.claims.exp + 1) * 1000)).rejects.toThrow(TokenError);
  });
});
