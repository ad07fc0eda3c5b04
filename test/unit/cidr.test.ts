import { describe, expect, it } from 'vitest';
import { capacityOf, intToIp, ipToInt, normalizeCidr, pickFreeAddress, usableRange } from '#functions/network/cidr.ts';

describe('cidr', () => {
  it('converts addresses both ways', () => {
    expect(ipToInt('10.0.0.1')).toBe(167772161);
    expect(intToIp(ipToInt('255.255.255.255'))).toBe('255.255.255.255');
    expect(() => ipToInt('10.0.0.256')).toThrow(RangeError);
  });

  it('reserves network, gateway and broadcast addresses', () => {
    const range = usableRange('10.0.0.0/26');
    expect(intToIp(range.first)).toBe('10.0.0.2');
    expect(intToIp(range.last)).toBe('10.0.0.62');
    expect(capacityOf('10.0.0.0/26')).toBe(61);
    expect(capacityOf('10.0.0.0/16')).toBe(65533);
  });

  it('normalizes a CIDR to its network address', () => {
    expect(normalizeCidr('10.1.2.3/24')).toBe('10.1.2.0/24');
  });

  it('picks only free addresses, and none when full', () => {
    const taken = new Set<string>();
    for (let i = 0; i < 61; i++) {
      const ip = pickFreeAddress('10.0.0.0/26', taken)!;
      expect(taken.has(ip)).toBe(false);
      taken.add(ip);
    }
    expect(pickFreeAddress('10.0.0.0/26', taken)).toBeUndefined();
  });

  it('spreads picks across the range so concurrent creates rarely collide', () => {
    const picks = new Set(Array.from({ length: 200 }, () => pickFreeAddress('10.0.0.0/24', new Set())));
    expect(picks.size).toBeGreaterThan(100);
  });
});
