import { randomBytes } from 'node:crypto';
import type { KMSClient } from '@aws-sdk/client-kms';
import { describe, expect, it } from 'vitest';
import { PairKeys } from '../../host-agent/pair-keys.ts';
import { MAX_PAIR_REVOCATIONS, pairRevocationRefusal, type PairRevocations, withLifted, withRevoked } from '#tokens/pair-revocations.ts';
import { issuePairToken, PAIR_TOKEN_SECONDS } from '#tokens/pair-tokens.ts';

const t0 = 1_700_000_000_000;
const claims = (src: string, iatMs: number) => ({ src, dst: 'vm-dst', iat: Math.floor(iatMs / 1000) });

describe('pair revocation rules', () => {
  it('refuses every token of a revoked pair, whenever it was issued, and no other pair', () => {
    const revoked = withRevoked(undefined, 'vm-a', t0)!;
    expect(pairRevocationRefusal(revoked, claims('vm-a', t0 - 60_000))).toBe('pair vm-a -> vm-dst is revoked');
    expect(pairRevocationRefusal(revoked, claims('vm-a', t0 + 60_000))).toBe('pair vm-a -> vm-dst is revoked');
    expect(pairRevocationRefusal(revoked, claims('vm-b', t0 - 60_000))).toBeUndefined();
    expect(pairRevocationRefusal(undefined, claims('vm-a', t0))).toBeUndefined();
  });

  it('once lifted, still refuses tokens issued before the revocation (their second included), and no later one', () => {
    const lifted = withLifted(withRevoked(undefined, 'vm-a', t0 + 500), 'vm-a', t0 + 30_000)!;
    expect(pairRevocationRefusal(lifted, claims('vm-a', t0 - 10_000))).toBe('token was issued before pair vm-a -> vm-dst was revoked');
    expect(pairRevocationRefusal(lifted, claims('vm-a', t0 + 400))).toMatch(/issued before/);
    expect(pairRevocationRefusal(lifted, claims('vm-a', t0 + 31_000))).toBeUndefined();
  });

  it('keeps the first time of a pair revoked twice; lifting what is not revoked is refused', () => {
    const once = withRevoked(undefined, 'vm-a', t0)!;
    expect(withRevoked(once, 'vm-a', t0 + 5_000)).toEqual({ 'vm-a': { revokedAt: t0 } });
    expect(withLifted(once, 'vm-b', t0)).toBeUndefined();
    expect(withLifted(withLifted(once, 'vm-a', t0 + 1)!, 'vm-a', t0 + 2)).toBeUndefined();
    // Revoked again after a lift: a new revocation.
    expect(withRevoked(withLifted(once, 'vm-a', t0 + 1), 'vm-a', t0 + 9)).toEqual({ 'vm-a': { revokedAt: t0 + 9 } });
  });

  it('forgets a lifted revocation one token lifetime after the lift, when every token it refused has expired', () => {
    const lifted = withLifted(withRevoked(undefined, 'vm-a', t0), 'vm-a', t0 + 1_000)!;
    expect(withRevoked(lifted, 'vm-b', t0 + 1_000 + PAIR_TOKEN_SECONDS * 1000 - 1)).toHaveProperty('vm-a');
    expect(withRevoked(lifted, 'vm-b', t0 + 1_000 + PAIR_TOKEN_SECONDS * 1000)).not.toHaveProperty('vm-a');
  });

  it(`holds at most ${MAX_PAIR_REVOCATIONS} revocations in force per destination`, () => {
    let revocations: PairRevocations = {};
    for (let i = 0; i < MAX_PAIR_REVOCATIONS; i++) revocations = withRevoked(revocations, `vm-${i}`, t0)!;
    expect(withRevoked(revocations, 'vm-one-more', t0)).toBeUndefined();
    expect(withRevoked(withLifted(revocations, 'vm-0', t0), 'vm-one-more', t0)).toBeDefined();
  });
});

describe('PairKeys at the destination host', () => {
  const secret = randomBytes(32);
  const kms = { send: async () => ({ Plaintext: new Uint8Array(secret) }) } as unknown as KMSClient;
  const host = '192.0.2.10';
  const mint = (src: string, srcIp: string) => issuePairToken(secret, { src, srcIp, dst: 'vm-dst', dstIp: '10.0.0.3', dstHost: host }).token;

  it("refuses a revoked pair's unexpired token, admits another pair's, and admits the pair again once lifted (new tokens only)", async () => {
    const keys = new PairKeys(kms);
    const [fromA, fromB, fromA2] = [mint('vm-a', '10.0.0.1'), mint('vm-b', '10.0.0.2'), mint('vm-a', '10.0.0.1')];
    const revokedAt = Date.now();
    await keys.replace([{ vmId: 'vm-dst', ciphertext: 'wrapped', pairRevocations: withRevoked(undefined, 'vm-a', revokedAt) }]);
    await expect(keys.verify(fromA, 'vm-dst', host)).rejects.toThrow('pair vm-a -> vm-dst is revoked');
    expect((await keys.verify(fromB, 'vm-dst', host)).src).toBe('vm-b');

    await keys.replace([
      { vmId: 'vm-dst', ciphertext: 'wrapped', pairRevocations: withLifted(withRevoked(undefined, 'vm-a', revokedAt), 'vm-a', revokedAt + 1) },
    ]);
    await expect(keys.verify(fromA2, 'vm-dst', host)).rejects.toThrow(/issued before pair vm-a -> vm-dst was revoked/);
    await new Promise((resolve) => setTimeout(resolve, 1_100 - (Date.now() % 1000)));
    expect((await keys.verify(mint('vm-a', '10.0.0.1'), 'vm-dst', host)).src).toBe('vm-a');
  });

  it('closes a pair from another network to new connections once a listing asked for after its token says the network is no longer allowed', async () => {
    const keys = new PairKeys(kms);
    const now = Date.now();
    const claims = (srcNet: string | undefined, iatMs: number) =>
      ({ src: 'vm-a', srcIp: '10.0.0.1', dst: 'vm-dst', dstIp: '10.0.0.3', dstHost: host, iat: Math.floor(iatMs / 1000), exp: 0, jti: 'x', srcNet }) as const;
    await keys.replace([{ vmId: 'vm-dst', ciphertext: 'wrapped', allowedSourceNetworks: ['net-allowed'] }], now);
    expect(keys.closedToNewConnections(claims('net-allowed', now - 10_000), 'net-dst')).toBeUndefined();
    expect(keys.closedToNewConnections(claims('net-dst', now - 10_000), 'net-dst')).toBeUndefined();
    expect(keys.closedToNewConnections(claims('net-gone', now - 10_000), 'net-dst')).toBe('network net-gone is no longer an allowed source of network net-dst');
    // Minted after the listing was asked for: the source may have been allowed since; the next listing decides.
    expect(keys.closedToNewConnections(claims('net-gone', now + 5_000), 'net-dst')).toBeUndefined();
    // Tokens without a source network (older control planes), and listings without allowed sources, close nothing.
    expect(keys.closedToNewConnections(claims(undefined, now - 10_000), 'net-dst')).toBeUndefined();
    await keys.replace([{ vmId: 'vm-dst', ciphertext: 'wrapped' }], now);
    expect(keys.closedToNewConnections(claims('net-gone', now - 10_000), 'net-dst')).toBeUndefined();
  });
});
