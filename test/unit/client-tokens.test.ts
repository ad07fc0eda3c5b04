import { describe, expect, it } from 'vitest';
import { fingerprintOf } from '#functions/core/client-tokens.ts';

describe('fingerprintOf', () => {
  it('is the same for the same parameters in any order, and differs when one changes', () => {
    const a = fingerprintOf({ name: 'web', networkId: 'net-1', clientToken: 't', nested: { b: 1, a: 2 } });
    expect(fingerprintOf({ nested: { a: 2, b: 1 }, clientToken: 't', networkId: 'net-1', name: 'web' })).toBe(a);
    expect(fingerprintOf({ name: 'web', networkId: 'net-2', clientToken: 't', nested: { b: 1, a: 2 } })).not.toBe(a);
  });
});
