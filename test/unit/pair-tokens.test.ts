import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TokenError } from '#tokens/jws.ts';
import { issuePairToken, PAIR_TOKEN_SECONDS, verifyPairToken } from '#tokens/pair-tokens.ts';

describe('pair tokens', () => {
  const secret = randomBytes(32);
  const pair = { src: 'vm-a', srcIp: '10.0.0.2', dst: 'vm-b', dstIp: '10.0.0.3', dstHost: '192.0.2.10' };
  const expected = { dst: 'vm-b', dstHost: '192.0.2.10' };

  it('verifies under the destination secret, for the destination and host it names', () => {
    const { token } = issuePairToken(secret, pair);
    expect(verifyPairToken(token, secret, expected)).toMatchObject(pair);
  });

  it.each([
    ['another secret', () => verifyPairToken(issuePairToken(secret, pair).token, randomBytes(32), expected), /bad MAC/],
    ['an expired token', () => verifyPairToken(issuePairToken(secret, pair, Date.now() - (PAIR_TOKEN_SECONDS + 1) * 1000).token, secret, expected), /expired/],
    ['another destination VM', () => verifyPairToken(issuePairToken(secret, pair).token, secret, { ...expected, dst: 'vm-c' }), /issued for vm vm-b/],
    [
      'another host address',
      () => verifyPairToken(issuePairToken(secret, pair).token, secret, { ...expected, dstHost: '192.0.2.99' }),
      /issued for host address/,
    ],
    ['garbage', () => verifyPairToken('nonsense', secret, expected), /not a pair token/],
  ])('refuses %s', (_, attempt, message) => {
    expect(attempt).toThrow(TokenError);
    expect(attempt).toThrow(message);
  });
});
