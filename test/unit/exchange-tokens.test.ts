import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bidRelayListenOf, parseAgentOptions } from '../../host-agent/agent-options.ts';
import { ExchangeTokens } from '../../host-agent/exchange-tokens.ts';
import { exchangeTokenLine, mintExchangeToken, parseExchangeTokens } from '../../tokens/exchange-tokens.ts';

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});
function tokensFile(text: string): string {
  const folder = mkdtempSync(path.join(tmpdir(), 'exchange-tokens-'));
  folders.push(folder);
  const file = path.join(folder, 'tokens');
  writeFileSync(file, text);
  return file;
}

describe('exchange tokens', () => {
  const acme = mintExchangeToken();
  const globex = mintExchangeToken();

  it('are random, and the file holds only their hash, by tenant', () => {
    expect(acme).toMatch(/^sbx_[A-Za-z0-9_-]{43}$/);
    expect(acme).not.toBe(globex);
    const line = exchangeTokenLine('acme', acme, 'adx-2026');
    expect(line).toMatch(/^acme sha256:[0-9a-f]{64} adx-2026$/);
    expect(line).not.toContain(acme.slice(4));
    expect([...parseExchangeTokens(`# comment\n\n${line}\n${exchangeTokenLine('globex', globex)}  # trailing\n`).values()]).toEqual(['acme', 'globex']);
  });

  it('refuse a bad file naming the line', () => {
    expect(() => parseExchangeTokens('acme sha256:abc\n', 'tokens')).toThrow('tokens, line 1: the second field must be sha256:<64 lowercase hex digits>');
    expect(() => parseExchangeTokens(`\nAcme! ${exchangeTokenLine('x', acme).split(' ')[1]}`, 'tokens')).toThrow('tokens, line 2: "Acme!" is not a tenant id');
    expect(() => parseExchangeTokens(`${exchangeTokenLine('acme', acme)}\n${exchangeTokenLine('globex', acme)}`)).toThrow(/listed for tenants acme and globex/);
    expect(() => new ExchangeTokens('/nonexistent/tokens')).toThrow(/cannot read \/nonexistent\/tokens/);
  });

  it('authenticate a request to its tenant, and say why one is refused', () => {
    const tokens = new ExchangeTokens(tokensFile(`${exchangeTokenLine('acme', acme)}\n${exchangeTokenLine('globex', globex)}\n`));
    expect(tokens.authenticate(`Bearer ${acme}`)).toEqual({ tenantId: 'acme' });
    expect(tokens.authenticate(`Bearer ${globex}`)).toEqual({ tenantId: 'globex' });
    expect(tokens.authenticate(undefined)).toEqual({ refused: 'an exchange token is required: Authorization: Bearer <token>' });
    expect(tokens.authenticate(`Basic ${acme}`)).toEqual({ refused: 'Authorization must be "Bearer <token>"' });
    expect(tokens.authenticate(`Bearer ${mintExchangeToken()}`)).toEqual({ refused: 'the exchange token is not valid on this host' });
    expect(new ExchangeTokens(undefined).authenticate(`Bearer ${acme}`)).toEqual({
      refused: 'this bid relay takes no exchange: its operator has configured no exchange tokens (--bid-relay-tokens)',
    });
  });

  it('follow the file: a removed line revokes, a bad file keeps what was read, a removed file revokes all', () => {
    const file = tokensFile(`${exchangeTokenLine('acme', acme)}\n${exchangeTokenLine('globex', globex)}\n`);
    const logged: string[] = [];
    const tokens = new ExchangeTokens(file, (message) => logged.push(message));
    let now = Date.now();
    const rewrite = (text: string) => {
      writeFileSync(file, text);
      now += 1000;
      utimesSync(file, now / 1000, now / 1000);
    };
    rewrite(`${exchangeTokenLine('globex', globex)}\n`);
    expect(tokens.authenticate(`Bearer ${acme}`, now)).toEqual({ refused: 'the exchange token is not valid on this host' });
    expect(tokens.authenticate(`Bearer ${globex}`, now)).toEqual({ tenantId: 'globex' });
    rewrite('garbage\n');
    expect(tokens.authenticate(`Bearer ${globex}`, now)).toEqual({ tenantId: 'globex' });
    expect(logged.at(-1)).toMatch(/line 1: .*; keeping the 1 token\(s\) read before/);
    rmSync(file);
    now += 1000;
    expect(tokens.authenticate(`Bearer ${globex}`, now)).toEqual({ refused: 'the exchange token is not valid on this host' });
    expect(logged.at(-1)).toMatch(/is gone/);
  });
});

describe('where the bid relay listens', () => {
  const required = ['--host-id', 'host-2', '--address', '192.0.2.12', '--api-url', 'http://127.0.0.1:3000/v1'];
  const options = (...args: string[]) => {
    const parsed = parseAgentOptions([...required, ...args], { HOST_AGENT_TOKEN: 'x'.repeat(40) });
    if (parsed.kind !== 'options') throw new Error(parsed.kind === 'invalid' ? parsed.message : 'help');
    return parsed.options;
  };

  it('is 127.0.0.1 by default, at --bid-port; --bid-relay-listen names an address, or the underlay one', () => {
    expect(bidRelayListenOf(options())).toEqual({ address: '127.0.0.1', port: 0 });
    expect(bidRelayListenOf(options('--bid-port', '8080'))).toEqual({ address: '127.0.0.1', port: 8080 });
    expect(bidRelayListenOf(options('--bid-relay-listen', '10.0.0.5:9000'))).toEqual({ address: '10.0.0.5', port: 9000 });
    expect(bidRelayListenOf(options('--bid-relay-listen', 'underlay:9000'))).toEqual({ address: '192.0.2.12', port: 9000 });
    expect(options('--bid-relay-tokens', '/etc/stratoplane/exchange-tokens').bidRelayTokens).toBe('/etc/stratoplane/exchange-tokens');
  });

  it('refuses what is not ADDR:PORT', () => {
    for (const bad of ['10.0.0.5', 'example.com:80', '10.0.0.5:70000']) {
      expect(() => options('--bid-relay-listen', bad)).toThrow(/^bidRelayListen: /);
    }
  });
});
