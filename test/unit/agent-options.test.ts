import { describe, expect, it } from 'vitest';
import { parseAgentOptions } from '../../host-agent/agent-options.ts';

const required = ['--host-id', 'host-2', '--address', '192.0.2.12', '--api-url', 'http://127.0.0.1:3000/v1'];

describe("the host agent's command line", () => {
  it('asks for help with --help or -h, whatever else is given', () => {
    expect(parseAgentOptions(['--help'], {})).toEqual({ kind: 'help' });
    expect(parseAgentOptions([...required, '-h'], {})).toEqual({ kind: 'help' });
  });

  it('takes flags, or the environment, with defaults for the rest', () => {
    const parsed = parseAgentOptions(required, { HOST_AGENT_TOKEN: 'x'.repeat(40), HOST_AGENT_START_TIMEOUT: '45' });
    expect(parsed).toMatchObject({
      kind: 'options',
      options: {
        hostId: 'host-2',
        address: '192.0.2.12',
        token: { value: 'x'.repeat(40) },
        capacity: 32,
        autoPlacement: 'on',
        startTimeoutSeconds: 45,
        runtime: 'process',
      },
    });
    const fromEnv = parseAgentOptions([], { HOST_ID: 'h-9', HOST_ADDRESS: '10.1.2.3', STRATOPLANE_API_URL: 'https://api/v1', HOST_AGENT_TOKEN_FILE: '/t' });
    expect(fromEnv).toMatchObject({ kind: 'options', options: { hostId: 'h-9', token: { file: '/t' }, startTimeoutSeconds: 30 } });
    expect(parseAgentOptions([...required, '--auto-placement', 'off'], { HOST_AGENT_TOKEN: 'x'.repeat(40) })).toMatchObject({
      kind: 'options',
      options: { autoPlacement: 'off' },
    });
    expect(parseAgentOptions(required, { HOST_AGENT_TOKEN: 'x'.repeat(40), HOST_AUTO_PLACEMENT: 'maybe' })).toEqual({
      kind: 'invalid',
      message: 'autoPlacement: auto-placement is on or off',
    });
  });

  it('says what is wrong, one line each, and refuses unknown flags', () => {
    expect(parseAgentOptions(['--host-id', 'host-2'], {})).toEqual({
      kind: 'invalid',
      message: [
        'address: must be a dotted-quad IPv4 address',
        'apiUrl: Invalid input: expected string, received undefined',
        'token: a host token is required: --token-file PATH, HOST_AGENT_TOKEN_FILE or HOST_AGENT_TOKEN',
      ].join('\n'),
    });
    expect(parseAgentOptions([...required, '--start-timeout', '0'], { HOST_AGENT_TOKEN: 'x'.repeat(40) })).toMatchObject({
      kind: 'invalid',
      message: expect.stringMatching(/^startTimeoutSeconds: /),
    });
    expect(parseAgentOptions(['--host', 'host-2'], {})).toEqual({ kind: 'invalid', message: expect.stringMatching(/^Unknown option '--host'/) });
    expect(parseAgentOptions([...required, '--bid-relay-tls-cert', '/etc/relay.pem'], { HOST_AGENT_TOKEN: 'x'.repeat(40) })).toEqual({
      kind: 'invalid',
      message: 'bidRelayTlsKey: the bid relay takes --bid-relay-tls-cert and --bid-relay-tls-key together, or neither',
    });
  });
});
