import { describe, expect, it } from 'vitest';
import { RegisterHostRequest } from '#events/api.ts';
import { notUnicast, underlayAddress } from '#events/identifiers.ts';
import { describeIssues } from '#functions/triggers/api-handler.ts';

describe('which addresses a host may register as its underlay address', () => {
  it.each([
    ['0.0.0.0', 'unspecified', '0.0.0.0/8'],
    ['0.1.2.3', 'unspecified', '0.0.0.0/8'],
    ['127.0.0.1', 'loopback', '127.0.0.0/8'],
    ['127.255.255.254', 'loopback', '127.0.0.0/8'],
    ['224.0.0.1', 'multicast', '224.0.0.0/4'],
    ['239.255.255.255', 'multicast', '224.0.0.0/4'],
    ['240.0.0.1', 'reserved', '240.0.0.0/4'],
    ['254.1.2.3', 'reserved', '240.0.0.0/4'],
    ['255.255.255.254', 'reserved', '240.0.0.0/4'],
    ['255.255.255.255', 'broadcast', '255.255.255.255/32'],
  ])('%s is %s (%s)', (address, kind, block) => {
    expect(notUnicast(address)).toEqual({ kind, block });
  });

  it.each(['1.0.0.0', '10.0.0.1', '126.255.255.255', '128.0.0.1', '172.31.254.10', '192.0.2.11', '198.51.100.7', '223.255.255.255'])(
    '%s is unicast',
    (address) => {
      expect(notUnicast(address)).toBeUndefined();
    },
  );

  it('refuses the non-unicast ones at the API, naming the field, the rule and the block', () => {
    const refused = RegisterHostRequest.safeParse({ hostId: 'h', address: '127.0.0.1', capacity: 1 });
    expect(refused.success).toBe(false);
    expect(describeIssues('body', refused.error!)).toBe('body.address: must be a unicast address other hosts can reach: 127.0.0.1 is loopback (127.0.0.0/8)');
    expect(RegisterHostRequest.safeParse({ hostId: 'h', address: '198.51.100.7', capacity: 1 }).success).toBe(true);
  });

  it('says the same of a malformed address as before, with nothing about unicast', () => {
    const refused = underlayAddress.safeParse('300.1.1.1');
    expect(refused.error?.issues.map((issue) => issue.message)).toEqual(['must be a dotted-quad IPv4 address']);
  });
});
