import { describe, expect, it } from 'vitest';
import { EgressAddressPolicy, embeddedIpv4 } from '../../host-agent/egress-addresses.ts';
import { EgressDestinations, EgressRefusedError, type Dial } from '../../host-agent/egress-destinations.ts';

describe('which addresses a VM bridge may connect to', () => {
  const policy = new EgressAddressPolicy();
  policy.setUnderlayAddresses(['192.0.2.11', '198.51.100.7']);

  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.1.2', 'loopback'],
    ['::1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['64:ff9b::127.0.0.1', 'loopback'],
    ['::127.0.0.1', 'reserved'],
    ['169.254.169.254', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.251', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['192.0.2.11', 'host underlay'],
    ['198.51.100.7', 'host underlay'],
    ['10.0.0.5', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['fd00::1', 'private'],
    ['::ffff:10.0.0.5', 'private'],
  ])('refuses %s (%s)', (address, reason) => {
    expect(policy.refusal(address)).toBe(reason);
  });

  it.each(['203.0.113.10', '8.8.8.8', '2001:db8::1', '::ffff:8.8.8.8', '192.0.2.12'])('lets %s through', (address) => {
    expect(policy.refusal(address)).toBeUndefined();
  });

  it('opens private ranges only where the operator opened them, and never what is always refused', () => {
    const opened = new EgressAddressPolicy();
    opened.openPrivateRanges(['10.20.0.0/16', '127.0.0.0/8', '169.254.0.0/16']);
    opened.setUnderlayAddresses(['10.20.0.1']);
    expect(opened.refusal('10.20.5.5')).toBeUndefined();
    expect(opened.refusal('10.21.0.1')).toBe('private');
    expect(opened.refusal('10.20.0.1')).toBe('host underlay');
    expect(opened.refusal('127.0.0.1')).toBe('loopback');
    expect(opened.refusal('169.254.169.254')).toBe('link-local');
  });

  it('reads the IPv4 address inside mapped and NAT64 IPv6 addresses', () => {
    expect(embeddedIpv4('::ffff:7f00:1')).toBe('127.0.0.1');
    expect(embeddedIpv4('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(embeddedIpv4('64:ff9b::a9fe:a9fe')).toBe('169.254.169.254');
    expect(embeddedIpv4('2001:db8::1')).toBeUndefined();
    expect(embeddedIpv4('10.0.0.1')).toBeUndefined();
  });
});

describe('where a VM bridge connects', () => {
  const policy = new EgressAddressPolicy();

  it('resolves once and connects to exactly the address it checked, whatever the name answers next (no rebinding window)', async () => {
    const answers = [['203.0.113.10'], ['127.0.0.1']];
    let resolutions = 0;
    const dialed: string[] = [];
    const dial: Dial = async (address) => {
      dialed.push(address);
      throw new Error('not connecting in a unit test');
    };
    const destinations = new EgressDestinations(policy, async () => answers[resolutions++]!, dial);
    const address = await destinations.check('rebind.example.test');
    await expect(destinations.connect(new URL('http://rebind.example.test/'), address)).rejects.toThrow('not connecting');
    expect(resolutions).toBe(1);
    expect(dialed).toEqual(['203.0.113.10']);
    // The next request resolves again, and is refused for what the name now says.
    await expect(destinations.check('rebind.example.test')).rejects.toThrow(
      new EgressRefusedError('rebind.example.test resolves to 127.0.0.1 (loopback): the bridge never connects there.'),
    );
  });

  it('checks IP literals without resolving them, in URL spelling too', async () => {
    const destinations = new EgressDestinations(
      policy,
      async () => {
        throw new Error('must not resolve a literal');
      },
      async () => {
        throw new Error('unused');
      },
    );
    await expect(destinations.check('[::1]')).rejects.toThrow('[::1] resolves to ::1 (loopback)');
    await expect(destinations.check(new URL('http://2130706433/').hostname)).rejects.toThrow('127.0.0.1 resolves to 127.0.0.1 (loopback)');
    await expect(destinations.check('8.8.8.8')).resolves.toBe('8.8.8.8');
  });

  it('refuses a name that resolves to nothing, or cannot be resolved, saying so', async () => {
    const empty = new EgressDestinations(
      policy,
      async () => [],
      async () => {
        throw new Error('unused');
      },
    );
    await expect(empty.check('void.example.test')).rejects.toThrow('void.example.test has no address.');
    const failing = new EgressDestinations(
      policy,
      async () => {
        throw new Error('queryA ETIMEOUT');
      },
      async () => {
        throw new Error('unused');
      },
    );
    await expect(failing.check('slow.example.test')).rejects.toThrow('slow.example.test could not be resolved: queryA ETIMEOUT');
  });
});
