import { describe, expect, it } from 'vitest';
import { UsedTokens } from '../../host-agent/used-tokens.ts';

describe('UsedTokens', () => {
  it('admits a token id once, and forgets it once its token has expired', () => {
    const used = new UsedTokens();
    const now = 1_000_000_000_000;
    expect(used.admit('token-a', now / 1000 + 300, now)).toBe(true);
    expect(used.admit('token-a', now / 1000 + 300, now + 1000)).toBe(false);
    expect(used.admit('token-b', now / 1000 + 310, now + 10_000)).toBe(true);
    // Past token-a's expiry it is dropped (a replay then fails as expired); token-b is still kept.
    expect(used.admit('token-c', now / 1000 + 600, now + 301_000)).toBe(true);
    expect(used.size).toBe(2);
    expect(used.admit('token-b', now / 1000 + 310, now + 302_000)).toBe(false);
  });
});
