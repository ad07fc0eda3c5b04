import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { API_TOKEN_TYPE } from '#events/tokens.ts';
import { claimedTokenId, issueApiToken, verifyApiToken } from '#tokens/api-tokens.ts';
import { derToJose, signingInputOf, TokenError, type PublicKeySource } from '#tokens/jws.ts';
import { KeyPairJwsSigner } from '#tokens/key-pair-signer.ts';

const issuer = KeyPairJwsSigner.generate();
const trusted: PublicKeySource = {
  isTrusted: (kid) => kid === issuer.kid,
  get: async () => issuer.publicKey,
};
const issue = (overrides: Partial<Parameters<typeof issueApiToken>[1]> = {}) =>
  issueApiToken(issuer, { subject: 'tenant:acme', scopes: ['tenant:read', 'tenant:write'], ttlSeconds: 3600, ...overrides }).then(({ token }) => token);

/** Re-signs a modified payload with the trusted key, as a leaked-key forger or a buggy issuer would. */
function forge(token: string, change: (payload: Record<string, unknown>) => void, typ = API_TOKEN_TYPE) {
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
  change(payload);
  return issuer.signNow(typ, payload);
}

describe('derToJose', () => {
  it('turns DER ECDSA signatures (KMS output) into JWS r||s that verify, including short integers', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    for (let i = 0; i < 300; i++) {
      const message = Buffer.from(`message ${i}`);
      const jose = derToJose(sign('sha256', message, privateKey));
      expect(jose).toHaveLength(64);
      expect(verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, jose)).toBe(true);
    }
  });
});

describe('API tokens', () => {
  it('verifies a token it issued and returns the principal', async () => {
    const principal = await verifyApiToken(await issue(), trusted);
    expect(principal).toEqual({ kind: 'tenant', id: 'acme', scopes: ['tenant:read', 'tenant:write'] });
  });

  it('refuses to issue scopes that do not fit the subject, or absurd lifetimes', async () => {
    await expect(issue({ subject: 'host:h1', scopes: ['tenant:write'] })).rejects.toThrow(/a host cannot hold scope tenant:write/);
    await expect(issue({ subject: 'tenant:acme', scopes: ['operator'] })).rejects.toThrow(/a tenant cannot hold scope operator/);
    await expect(issue({ ttlSeconds: 10 })).rejects.toThrow(/ttl must be/);
    await expect(issue({ ttlSeconds: 365 * 86_400 })).rejects.toThrow(/ttl must be/);
  });

  const refusals: [string, () => Promise<string>, RegExp][] = [
    ['garbage', async () => 'not.a.token', /not a compact JWS|not JSON/],
    ['a token from an untrusted key', async () => KeyPairJwsSigner.generate().signNow(API_TOKEN_TYPE, { sub: 'tenant:acme' }), /not a trusted/],
    [
      'a tampered subject',
      async () => {
        const token = await issue();
        const [header, , signature] = token.split('.');
        const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
        payload.sub = 'tenant:other';
        return `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`;
      },
      /bad signature/,
    ],
    ['an expired token', () => issue({ now: Date.now() - 2 * 3600_000, ttlSeconds: 3600 }), /expired/],
    ['a token from the future', () => issue({ now: Date.now() + 3600_000 }), /future/],
    [
      'alg none',
      async () => {
        const token = await issue();
        const header = Buffer.from(JSON.stringify({ alg: 'none', typ: API_TOKEN_TYPE, kid: issuer.kid })).toString('base64url');
        return `${header}.${token.split('.')[1]}.AAAA`;
      },
      /alg must be ES256/,
    ],
    ['another token type', async () => forge(await issue(), () => {}, 'JWT'), /typ must be/],
    ['a host holding tenant scopes', async () => forge(await issue(), (payload) => (payload.sub = 'host:h1')), /a host cannot hold scope/],
    ['a lifetime beyond the maximum', async () => forge(await issue(), (payload) => (payload.exp = (payload.iat as number) + 400 * 86_400)), /lifetime/],
    ['an unknown scope', async () => forge(await issue(), (payload) => (payload.scope = 'tenant:read admin')), /unknown scope admin/],
    ['another audience', async () => forge(await issue(), (payload) => (payload.aud = 'elsewhere')), /bad claims: aud/],
  ];
  it.each(refusals)('refuses %s', async (_, make, reason) => {
    const attempt = verifyApiToken(await make(), trusted);
    await expect(attempt).rejects.toThrow(TokenError);
    await expect(attempt).rejects.toThrow(reason);
  });

  it('refuses a revoked token, asking about its id, after its signature and claims check out', async () => {
    const token = await issue();
    const asked: string[] = [];
    const attempt = verifyApiToken(token, trusted, Date.now(), async (jti) => {
      asked.push(jti);
      return true;
    });
    await expect(attempt).rejects.toThrow(/was revoked/);
    expect(asked).toEqual([claimedTokenId(token).jti]);
    await expect(verifyApiToken(token, trusted, Date.now(), async () => false)).resolves.toMatchObject({ kind: 'tenant' });
  });

  it('reads the id a token claims without its signature, and names what is not a token', async () => {
    expect(claimedTokenId(await issue())).toMatchObject({
      jti: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/),
      sub: expect.any(String),
      exp: expect.any(Number),
    });
    expect(() => claimedTokenId('not.a.token')).toThrow(TokenError);
  });

  it('builds signing input as base64url JSON header and payload', () => {
    const input = signingInputOf({ alg: 'ES256', typ: 't', kid: 'k' }, { a: 1 });
    expect(input.split('.').map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()))).toEqual([{ alg: 'ES256', typ: 't', kid: 'k' }, { a: 1 }]);
  });
});
