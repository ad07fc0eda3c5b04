import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleBidRequest } from '../../bench/openrtb-sample.ts';
import { exchangeTokenLine, mintExchangeToken } from '../../tokens/exchange-tokens.ts';
import { startTsProcess, type Started } from '../../local/processes.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { tenantToken } from '../helpers/tokens.ts';

describe('bid relay', () => {
  let agent: RunningAgent;
  const [tenantA, tenantB] = [uniqueId('bids-a'), uniqueId('bids-b')];
  const [tokenA, tokenB] = [mintExchangeToken(), mintExchangeToken()];
  const folder = mkdtempSync(path.join(tmpdir(), 'bid-relay-test-'));
  const tokensFile = path.join(folder, 'exchange-tokens');
  const vms: Record<string, any> = {};
  const bidders: Started<unknown>[] = [];
  const status = async () => (await agent.status()) as any;

  /** Starts a bidder process for a VM, connected to that VM's bridge. */
  async function bidderFor(name: string, args: string[]) {
    const port = (await status()).vms[vms[name].vmId].bidderPort;
    bidders.push(await startTsProcess({ entry: 'test/fixtures/bidder.ts', args: ['--port', String(port), ...args], readyPrefix: 'BIDDER_READY' }));
    await eventually(async () => expect((await status()).vms[vms[name].vmId].bidder.connected).toBe(true));
  }

  const post = async (body: string, headers: Record<string, string>) => {
    const started = performance.now();
    const response = await fetch(`${(await status()).bidRelayUrl}/openrtb2/auction`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined, elapsedMs: performance.now() - started };
  };
  const auction = (body: unknown, token = tokenA) => post(JSON.stringify(body), { authorization: `Bearer ${token}` });

  beforeAll(async () => {
    writeFileSync(tokensFile, `# exchange tokens of this host\n${exchangeTokenLine(tenantA, tokenA, 'exchange-a')}\n${exchangeTokenLine(tenantB, tokenB)}\n`);
    // Any address the operator names: here a loopback one other than 127.0.0.1, so the setting shows.
    agent = await startAgent(uniqueId('bids'), '198.51.100.195', 32, undefined, ['--bid-relay-listen', '127.0.0.2:0', '--bid-relay-tokens', tokensFile]);
    const network = await expectOk(api('POST', '/networks', { name: 'bidders', cidr: '10.78.0.0/24' }, tenantToken(tenantA)), 201);
    for (const name of ['fast', 'slow', 'quiet', 'cheap', 'idle', 'full']) {
      vms[name] = await expectOk(createVmOn({ name, networkId: network.networkId, hostId: agent.hostId }, tenantA), 201);
    }
    const networkB = await expectOk(api('POST', '/networks', { name: 'other-bidders', cidr: '10.79.0.0/24' }, tenantToken(tenantB)), 201);
    vms.other = await expectOk(createVmOn({ name: 'other', networkId: networkB.networkId, hostId: agent.hostId }, tenantB), 201);
    await eventually(async () => expect(Object.keys((await status()).vms)).toHaveLength(7));
    await bidderFor('fast', ['--delay-ms', '5', '--price', '2.5']);
    await bidderFor('slow', ['--delay-ms', '600', '--price', '9']);
    await bidderFor('quiet', ['--no-bid']);
    await bidderFor('cheap', ['--price', '0.1']);
    await bidderFor('full', ['--sbrp', '2', '--price', '3']);
    await bidderFor('other', ['--sbrp', '2', '--price', '7']);
    // The relay learns whose VMs they are with the host's VM configurations.
    await eventually(async () => expect((await auction({ id: 'warm', imp: [{ id: '1' }], tmax: 100, ext: { bidders: [vms.fast.vmId] } })).status).toBe(200));
  }, 90_000);

  afterAll(async () => {
    await Promise.all(bidders.map((bidder) => bidder.stop()));
    await agent?.process.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  it('listens where the operator said', async () => {
    expect((await status()).bidRelayUrl).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
    expect((await status()).bidRelay).toMatchObject({ tokensFile, exchangeTokens: 2 });
  });

  it('answers within tmax with the bids that came in time, and says how each bidder fared', async () => {
    const all = ['fast', 'slow', 'quiet', 'cheap', 'idle'].map((name) => vms[name].vmId);
    const answer = await auction({ id: 'req-1', imp: [{ id: '1', bidfloor: 0.5 }, { id: '2' }], tmax: 150, ext: { bidders: all } });
    expect(answer.status).toBe(200);
    // tmax plus a small bound for HTTP on a shared 2-core machine.
    expect(answer.elapsedMs).toBeLessThan(150 + 50);
    expect(answer.body.cur).toBe('USD');
    const seats = Object.fromEntries(
      answer.body.seatbid.map((seat: any) => [seat.seat, seat.bid.map((bid: any) => ({ impid: bid.impid, price: bid.price, adm: bid.adm }))]),
    );
    expect(seats).toEqual({
      [vms.fast.vmId]: [
        { impid: '1', price: 2.5, adm: '<div>ad 1</div>' },
        { impid: '2', price: 2.5, adm: '<div>ad 2</div>' },
      ],
      // 0.10 is under impression 1's floor of 0.50, and fine for impression 2, which has none.
      [vms.cheap.vmId]: [{ impid: '2', price: 0.1, adm: '<div>ad 2</div>' }],
    });
    expect(answer.body.ext.bidders).toEqual({
      [vms.fast.vmId]: 'bid',
      [vms.cheap.vmId]: 'bid',
      [vms.slow.vmId]: 'timeout',
      [vms.quiet.vmId]: 'no-bid',
      [vms.idle.vmId]: 'not-connected',
    });
    // The late bidder's answer arrives after the auction and is dropped.
    await eventually(async () => expect((await status()).vms[vms.slow.vmId].bidder.late).toBeGreaterThanOrEqual(1), 5_000);
  });

  it('passes the whole OpenRTB 2.6 request to an SBRP/2 bidder, and its bids back with size, currency and advertiser', async () => {
    const request = sampleBidRequest([vms.full.vmId, vms.slow.vmId], 120);
    const answer = await auction(request);
    expect(answer.status).toBe(200);
    expect(answer.elapsedMs).toBeLessThan(120 + 50);
    expect(answer.body).toMatchObject({ id: request.id, cur: 'USD', ext: { bidders: { [vms.full.vmId]: 'bid', [vms.slow.vmId]: 'timeout' } } });
    const [seat] = answer.body.seatbid;
    expect(seat.seat).toBe(vms.full.vmId);
    expect(seat.bid.map(({ adm: _, ...bid }: any) => bid)).toEqual([
      {
        id: `${request.id}-${vms.full.vmId}-0`,
        impid: '1',
        price: 3,
        crid: expect.stringMatching(/^cr-\d+$/),
        w: 300,
        h: 250,
        adomain: ['advertiser.example'],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: OpenRTB's win-price macro, which the exchange substitutes.
        nurl: 'https://win.example/1?price=${AUCTION_PRICE}',
      },
      expect.objectContaining({ impid: '2', w: 640, h: 360 }),
    ]);
    // What the bidder was told, as it echoes it in its markup: everything it needs to price.
    const seen = JSON.parse(seat.bid[0].adm);
    expect(seen).toMatchObject({ id: request.id, tmax: 120, at: 1, cur: ['USD', 'EUR'] });
    expect(seen.impression).toMatchObject({ id: '1', floorMicros: 500_000, floorCurrency: 'USD', secure: true, banner: request.imp[0]!.banner!.format });
    expect(seen.impression.json).toMatchObject({ tagid: 'homepage-top', pmp: request.imp[0]!.pmp });
    expect(JSON.parse(seat.bid[1].adm).impression.video).toMatchObject({
      mimes: ['video/mp4', 'video/webm'],
      minDuration: 5,
      maxDuration: 30,
      protocols: [2, 3, 7],
    });
    expect(seen.sections).toEqual({
      site: request.site,
      device: request.device,
      user: request.user,
      regs: request.regs,
      source: request.source,
      request: { bcat: request.bcat, badv: request.badv },
    });
  });

  it('drops bids under the floor or in a currency the request does not take, and answers 204 when no bid is left', async () => {
    const answer = await auction({ id: 'req-2', imp: [{ id: '1', bidfloor: 1 }], tmax: 100, ext: { bidders: [vms.quiet.vmId, vms.cheap.vmId] } });
    expect(answer.status).toBe(204);
    expect(answer.elapsedMs).toBeLessThan(100 + 50);
    // The SBRP/2 bidder bids in USD; this exchange takes euros only.
    const euros = await auction({ id: 'req-eur', cur: ['EUR'], imp: [{ id: '1', bidfloorcur: 'EUR' }], tmax: 100, ext: { bidders: [vms.full.vmId] } });
    expect(euros.status).toBe(204);
    const { bids } = await status();
    expect(bids.outcomes.invalid).toBeGreaterThanOrEqual(2);
  });

  it('refuses malformed requests with the field named', async () => {
    const answer = await auction({ id: 'req-3', imp: [], tmax: 100, ext: { bidders: [vms.fast.vmId] } });
    expect(answer.status).toBe(400);
    expect(answer.body.message).toMatch(/^body\.imp: /);
    expect((await auction({ id: 'req-4', imp: [{ id: '1' }], ext: { bidders: [vms.fast.vmId] } })).body.message).toMatch(/^body\.tmax: /);
    const both = await auction({ ...sampleBidRequest([vms.full.vmId]), app: { bundle: 'com.example' } });
    expect(both).toMatchObject({ status: 400, body: { message: 'body.app: a request has a site or an app, not both' } });
    const badFormat = sampleBidRequest([vms.full.vmId]);
    (badFormat.imp[0]!.banner!.format[0] as any).w = 'wide';
    expect((await auction(badFormat)).body.message).toMatch(/^body\.imp\.0\.banner\.format\.0\.w: /);
    expect(await post('{"id":', { authorization: `Bearer ${tokenA}` })).toMatchObject({ status: 400, body: { message: 'body: not JSON' } });
  });

  describe('refuses abuse', () => {
    const request = () => sampleBidRequest([vms.full.vmId]);

    it('no token, a malformed one, or one this host does not know: 401, and no bidder is asked', async () => {
      const before = (await status()).vms[vms.full.vmId].bidder.requests;
      const none = await post(JSON.stringify(request()), {});
      expect(none).toMatchObject({ status: 401, body: { message: 'an exchange token is required: Authorization: Bearer <token>' } });
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="stratoplane-bid-relay"');
      const basic = await post(JSON.stringify(request()), { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` });
      expect(basic).toMatchObject({ status: 401, body: { message: 'Authorization must be "Bearer <token>"' } });
      const wrong = await auction(request(), mintExchangeToken());
      expect(wrong).toMatchObject({ status: 401, body: { message: 'the exchange token is not valid on this host' } });
      expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="stratoplane-bid-relay", error="invalid_token"');
      // A tenant's API token is not an exchange token.
      expect((await auction(request(), await tenantToken(tenantA))).status).toBe(401);
      expect((await status()).vms[vms.full.vmId].bidder.requests).toBe(before);
      expect((await status()).bids.unauthorized).toBeGreaterThanOrEqual(4);
    });

    it("another tenant's bidder, named alone or among one's own, or a VM not on this host: 403 naming it, without saying whose it is", async () => {
      const before = (await status()).vms[vms.other.vmId].bidder.requests;
      const mixed = await auction(sampleBidRequest([vms.full.vmId, vms.other.vmId]));
      expect(mixed).toMatchObject({ status: 403, body: { message: `body.ext.bidders.1: ${vms.other.vmId} is not a VM of tenant ${tenantA} on this host` } });
      expect(mixed.body.message).not.toContain(tenantB);
      // The same request replayed with the other tenant's token: now A's VM is the foreign one.
      const replayed = await auction(sampleBidRequest([vms.full.vmId, vms.other.vmId]), tokenB);
      expect(replayed).toMatchObject({ status: 403, body: { message: `body.ext.bidders.0: ${vms.full.vmId} is not a VM of tenant ${tenantB} on this host` } });
      const nowhere = await auction(sampleBidRequest(['vm-000000000000']));
      expect(nowhere).toMatchObject({ status: 403, body: { message: `body.ext.bidders.0: vm-000000000000 is not a VM of tenant ${tenantA} on this host` } });
      expect((await status()).vms[vms.other.vmId].bidder.requests).toBe(before);
      // Tenant B's own exchange reaches B's bidder.
      const own = await auction(sampleBidRequest([vms.other.vmId]), tokenB);
      expect(own).toMatchObject({ status: 200, body: { seatbid: [{ seat: vms.other.vmId }] } });
    });

    it('an oversized body: 413, whether announced or streamed', async () => {
      const padded = { ...request(), ext: { bidders: [vms.full.vmId], padding: 'x'.repeat(70 * 1024) } };
      const announced = await auction(padded);
      expect(announced).toMatchObject({ status: 413, body: { message: 'bid requests are at most 65536 bytes' } });
      // Streamed without a length: the relay stops reading at the limit.
      const chunks = [JSON.stringify(padded)];
      const streamed = await fetch(`${(await status()).bidRelayUrl}/openrtb2/auction`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokenA}`, 'content-type': 'application/json' },
        body: new ReadableStream({
          pull(controller) {
            const next = chunks.shift();
            if (next === undefined) controller.close();
            else controller.enqueue(new TextEncoder().encode(next));
          },
        }),
        duplex: 'half',
      } as RequestInit).catch((error: Error) => error);
      // The relay answers 413 and closes; a client still sending may see the reset instead.
      if (!(streamed instanceof Error)) expect(streamed.status).toBe(413);
    });

    it('a revoked token (its line removed from the file): 401 within seconds, without a restart', async () => {
      writeFileSync(tokensFile, `${exchangeTokenLine(tenantB, tokenB)}\n`);
      await eventually(async () => expect((await auction(request())).status).toBe(401), 5_000, 200);
      expect((await auction(sampleBidRequest([vms.other.vmId]), tokenB)).status).toBe(200);
    });
  });
});
