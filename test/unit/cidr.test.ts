import { describe, expect, it } from 'vitest';
import { capacityOf, cidrsOverlap, freshAddress, intToIp, ipToInt, normalizeCidr, usableRange } from '#functions/network/cidr.ts';

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

  it('hands fresh addresses out in order, each once, and none past the last', () => {
    const handed = Array.from({ length: 61 }, (_, i) => freshAddress('10.0.0.0/26', i + 1));
    expect(handed[0]).toBe('10.0.0.2');
    expect(handed[60]).toBe('10.0.0.62');
    expect(new Set(handed).size).toBe(61);
    expect(freshAddress('10.0.0.0/26', 62)).toBeUndefined();
    expect(freshAddress('10.0.0.0/26', 0)).toBeUndefined();
    expect(freshAddress('10.1.0.0/16', 5000)).toBe('10.1.19.137');
    expect(freshAddress('10.1.0.0/16', 65533)).toBe('10.1.255.254');
    expect(freshAddress('10.1.0.0/16', 65534)).toBeUndefined();
  });

  it('tells networks that share an address (a pair between them could not be routed) from those that do not', () => {
    expect(cidrsOverlap('10.0.0.0/24', '10.0.0.0/24')).toBe(true);
    expect(cidrsOverlap('10.0.0.0/16', '10.0.5.0/24')).toBe(true);
    expect(cidrsOverlap('10.0.5.7/24', '10.0.5.0/28')).toBe(true);
    expect(cidrsOverlap('10.0.0.0/24', '10.0.1.0/24')).toBe(false);
    expect(cidrsOverlap('10.0.0.0/25', '10.0.0.128/25')).toBe(false);
  });
});
