import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../host-agent/token-bucket.ts';

describe('token bucket', () => {
  it('lets a burst through, then the rate, and says when the next token comes', () => {
    const bucket = new TokenBucket(2, 3, 0);
    expect([0, 0, 0].map((now) => bucket.take(now).ok)).toEqual([true, true, true]);
    expect(bucket.take(0)).toEqual({ ok: false, retryAfterMs: 500 });
    expect(bucket.take(499).ok).toBe(false);
    expect(bucket.take(500).ok).toBe(true);
    // Idle time saves up no more than the burst.
    expect(Array.from({ length: 5 }, () => bucket.take(60_000).ok)).toEqual([true, true, true, false, false]);
  });
});
