import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { issueApiToken } from '#tokens/api-tokens.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { eventually } from '../helpers/agents.ts';
import { api, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';
import { operatorToken, tokenFor } from '../helpers/tokens.ts';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';

async function raw(headers: Record<string, string>) {
  const response = await fetch(`${inject('apiUrl')}/networks`, { headers });
  return { status: response.status, body: await response.json() };
}

describe('API authentication', () => {
  const hostId = uniqueId('auth');
  const otherHostId = uniqueId('auth-other');

  beforeAll(async () => {
    for (const [i, id] of [hostId, otherHostId].entries()) {
      await expectOk(api('POST', '/hosts', { hostId: id, address: `198.51.100.${140 + i}`, capacity: 2 }, operatorToken()), 201);
    }
    await keepAlive(hostId, otherHostId);
  });

  it.each([
    ['no Authorization header', {}],
    ['a non-Bearer scheme', { authorization: 'Basic dXNlcjpwYXNz' }],
    ['a token that is not a JWS', { authorization: 'Bearer not-a-token' }],
  ])('answers 401 to %s', async (_, headers) => {
    expect(await raw(headers)).toEqual({ status: 401, body: { message: 'Unauthorized' } });
  });

  it('answers 401 to a token signed by another KMS key, a tampered token and an expired one', async () => {
    const kms = new KMSClient(localAwsConfig());
    const { KeyMetadata } = await kms.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }));
    const rogue = await issueApiToken(new KmsJwsSigner(kms, KeyMetadata!.KeyId!), { subject: 'tenant:test-tenant', scopes: ['tenant:read'], ttlSeconds: 600 });
    const genuine = await tokenFor('tenant', 'victim');
    const [header, payload, signature] = genuine.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const tampered = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'tenant:someone-else' })).toString('base64url')}.${signature}`;
    const expired = await issueApiToken(new KmsJwsSigner(kms, keyAlias('api-tokens', deploymentFromEnvironment())), {
      subject: 'tenant:test-tenant',
      scopes: ['tenant:read'],
      ttlSeconds: 60,
      now: Date.now() - 3600_000,
    });
    for (const token of [rogue.token, tampered, expired.token]) {
      expect(await raw({ authorization: `Bearer ${token}` })).toEqual({ status: 401, body: { message: 'Unauthorized' } });
    }
    expect((await raw({ authorization: `Bearer ${genuine}` })).status).toBe(200);
  });

  it('lets a read-only tenant token read but not write', async () => {
    const readOnly = tokenFor('tenant', 'reader', ['tenant:read']);
    expect((await api('GET', '/networks', undefined, readOnly)).status).toBe(200);
    const write = await api('POST', '/networks', { name: 'x', cidr: '10.0.0.0/24' }, readOnly);
    expect(write).toEqual({ status: 403, body: { message: 'this route needs scope tenant:write' } });
  });

  it('keeps hosts to their own host routes, and operators off tenant routes', async () => {
    const host = tokenFor('host', hostId);
    expect((await api('GET', `/hosts/${hostId}/forwarding-table`, undefined, host)).status).toBe(200);
    expect((await api('GET', `/hosts/${otherHostId}/forwarding-table`, undefined, host)).status).toBe(403);
    expect((await api('POST', '/hosts', { hostId: otherHostId, address: '198.51.100.141', capacity: 2 }, host)).status).toBe(403);
    expect((await api('POST', '/hosts', { hostId, address: '198.51.100.140', capacity: 2 }, host)).status).toBe(200);
    expect((await api('GET', '/hosts', undefined, host)).status).toBe(403);
    expect((await api('GET', '/vms', undefined, host)).status).toBe(403);
    expect((await api('GET', '/networks', undefined, operatorToken())).status).toBe(403);
    expect((await api('GET', `/hosts/${otherHostId}/forwarding-table`, undefined, operatorToken())).status).toBe(200);
  });

  it('refuses a revoked token everywhere within the authorizer cache (a minute), and only that token', async () => {
    const kms = new KMSClient(localAwsConfig());
    const signer = new KmsJwsSigner(kms, keyAlias('api-tokens', deploymentFromEnvironment()));
    const leaked = await issueApiToken(signer, { subject: 'tenant:leaky', scopes: ['tenant:read'], ttlSeconds: 3600 });
    const sibling = await issueApiToken(signer, { subject: 'tenant:leaky', scopes: ['tenant:read'], ttlSeconds: 3600 });
    const byJti = await issueApiToken(signer, { subject: 'host:leaky-host', scopes: ['host'], ttlSeconds: 3600 });
    // In use, and so in the authorizer's cache, when it is revoked.
    expect((await raw({ authorization: `Bearer ${leaked.token}` })).status).toBe(200);

    const revoked = await expectOk(api('POST', '/token-revocations', { token: leaked.token, reason: 'leaked in a build log' }, operatorToken()), 201);
    expect(revoked).toMatchObject({
      jti: leaked.claims.jti,
      subject: 'tenant:leaky',
      reason: 'leaked in a build log',
      revokedUntil: new Date((leaked.claims.exp + 60) * 1000).toISOString(),
    });
    // Again: the same revocation, 200.
    expect((await api('POST', '/token-revocations', { token: leaked.token }, operatorToken())).status).toBe(200);
    // By id alone, as issue-token printed it: until the longest a token can live.
    expect((await expectOk(api('POST', '/token-revocations', { jti: byJti.claims.jti }, operatorToken()), 201)).jti).toBe(byJti.claims.jti);

    // A token never used before is refused at once; the cached one within the cache's minute.
    expect(await raw({ authorization: `Bearer ${byJti.token}` })).toEqual({ status: 401, body: { message: 'Unauthorized' } });
    const waited = await eventually(async () => expect((await raw({ authorization: `Bearer ${leaked.token}` })).status).toBe(401), 75_000, 2000);
    expect(waited).toBeLessThan(70_000);
    expect((await raw({ authorization: `Bearer ${sibling.token}` })).status).toBe(200);

    expect((await api('POST', '/token-revocations', { token: leaked.token, jti: leaked.claims.jti }, operatorToken())).status).toBe(400);
    expect((await api('POST', '/token-revocations', { token: 'x'.repeat(30) }, operatorToken())).body.message).toMatch(/^body\.token: not a token/);
    expect((await api('POST', '/token-revocations', { jti: byJti.claims.jti }, tokenFor('tenant', 'leaky'))).status).toBe(403);
  }, 120_000);
});
