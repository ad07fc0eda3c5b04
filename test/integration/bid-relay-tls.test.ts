import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchangeTokenLine, mintExchangeToken } from '../../tokens/exchange-tokens.ts';
import { startTsProcess, type Started } from '../../local/processes.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { makeTestCertificates } from '../helpers/test-ca.ts';
import { tenantToken } from '../helpers/tokens.ts';

/**
 * The bid relay in TLS (`--bid-relay-tls-cert`, `--bid-relay-tls-key`): an exchange's bearer token
 * never crosses the network in the clear. Plain HTTP to its port gets no answer.
 */
describe('bid relay over TLS', () => {
  const tenantId = uniqueId('bidtls');
  const token = mintExchangeToken();
  const folder = mkdtempSync(path.join(tmpdir(), 'bid-relay-tls-'));
  /** The relay's certificate for its address, from a throwaway CA the exchange trusts. */
  const { caFile, certFile, keyFile } = makeTestCertificates(['127.0.0.3']);
  let agent: RunningAgent;
  let bidder: Started<unknown> | undefined;
  let vmId: string;
  let relayUrl: URL;

  /** POSTs an auction to the relay in TLS, trusting only the CA of the relay's certificate. */
  const auction = (authorization?: string) =>
    new Promise<{ status: number; body: any }>((resolve, reject) => {
      const request = https.request(
        relayUrl,
        {
          method: 'POST',
          path: '/openrtb2/auction',
          ca: readFileSync(caFile),
          headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve({ status: response.statusCode!, body: text ? JSON.parse(text) : undefined }));
        },
      );
      request.on('error', reject);
      request.end(JSON.stringify({ id: 'tls-1', imp: [{ id: '1', bidfloor: 0.5 }], tmax: 200, ext: { bidders: [vmId] } }));
    });

  beforeAll(async () => {
    const tokensFile = path.join(folder, 'exchange-tokens');
    writeFileSync(tokensFile, `${exchangeTokenLine(tenantId, token, 'exchange')}\n`);
    agent = await startAgent(uniqueId('bidtls'), '198.51.100.196', 8, undefined, [
      '--bid-relay-listen',
      '127.0.0.3:0',
      '--bid-relay-tokens',
      tokensFile,
      '--bid-relay-tls-cert',
      certFile,
      '--bid-relay-tls-key',
      keyFile,
    ]);
    relayUrl = new URL(((await agent.status()) as any).bidRelayUrl);
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'tls-bidders', cidr: '10.72.0.0/24' }, tenantToken(tenantId)), 201);
    vmId = (await expectOk(createVmOn({ name: 'bidder', networkId, hostId: agent.hostId }, tenantId), 201)).vmId;
    await eventually(async () => expect(((await agent.status()) as any).vms[vmId]).toBeDefined());
    const port = ((await agent.status()) as any).vms[vmId].bidderPort;
    bidder = await startTsProcess({ entry: 'test/fixtures/bidder.ts', args: ['--port', String(port), '--price', '4'], readyPrefix: 'BIDDER_READY' });
  }, 120_000);

  afterAll(async () => {
    await bidder?.stop();
    await agent?.process.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('answers an exchange in TLS with its certificate, and refuses one without a token', async () => {
    expect(relayUrl.protocol).toBe('https:');
    await eventually(async () => {
      const { status, body } = await auction(`Bearer ${token}`);
      expect(status).toBe(200);
      expect(body.seatbid[0].bid[0].price).toBe(4);
    });
    expect((await auction()).status).toBe(401);
  });

  it('gives plain HTTP nothing: the token would have crossed in the clear', async () => {
    const plain = await fetch(`http://${relayUrl.host}/openrtb2/auction`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'plain', imp: [{ id: '1' }], tmax: 100, ext: { bidders: [vmId] } }),
    }).then(
      (response) => `answered ${response.status}`,
      (error: Error) => `failed: ${error.message}`,
    );
    expect(plain).toMatch(/^failed/);
  });
});
