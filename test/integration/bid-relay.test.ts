import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTsProcess, type Started } from '../../local/processes.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';

describe('bid relay', () => {
  let agent: RunningAgent;
  const vms: Record<string, any> = {};
  const bidders: Started<unknown>[] = [];
  const status = async () => (await agent.status()) as any;

  /** Starts a bidder process for a VM, connected to that VM's bridge. */
  async function bidderFor(name: string, args: string[]) {
    const port = (await status()).vms[vms[name].vmId].bidderPort;
    bidders.push(await startTsProcess({ entry: 'test/fixtures/bidder.ts', args: ['--port', String(port), ...args], readyPrefix: 'BIDDER_READY' }));
    await eventually(async () => expect((await status()).vms[vms[name].vmId].bidder.connected).toBe(true));
  }

  const auction = async (body: unknown) => {
    const started = performance.now();
    const response = await fetch(`${(await status()).bidRelayUrl}/openrtb2/auction`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined, elapsedMs: performance.now() - started };
  };

  beforeAll(async () => {
    agent = await startAgent(uniqueId('bids'), '198.51.100.195');
    const network = await expectOk(api('POST', '/networks', { name: 'bidders', cidr: '10.78.0.0/24' }), 201);
    for (const name of ['fast', 'slow', 'quiet', 'cheap', 'idle']) {
      vms[name] = await expectOk(createVmOn({ name, networkId: network.networkId, hostId: agent.hostId }), 201);
    }
    await eventually(async () => expect(Object.keys((await status()).vms)).toHaveLength(5));
    await bidderFor('fast', ['--delay-ms', '5', '--price', '2.5']);
    await bidderFor('slow', ['--delay-ms', '600', '--price', '9']);
    await bidderFor('quiet', ['--no-bid']);
    await bidderFor('cheap', ['--price', '0.1']);
  }, 60_000);

  afterAll(async () => {
    await Promise.all(bidders.map((bidder) => bidder.stop()));
    await agent?.process.stop();
  });

  it('answers within tmax with the bids that came in time, and says how each bidder fared', async () => {
    const all = ['fast', 'slow', 'quiet', 'cheap', 'idle'].map((name) => vms[name].vmId);
    const answer = await auction({ id: 'req-1', imp: [{ id: '1', bidfloor: 0.5 }, { id: '2' }], tmax: 150, ext: { bidders: all } });
    expect(answer.status).toBe(200);
    // tmax plus a small bound for HTTP on a shared 2-core machine.
    expect(answer.elapsedMs).toBeLessThan(150 + 50);
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

  it('drops bids under the floor, and answers 204 when no bid is left', async () => {
    const answer = await auction({ id: 'req-2', imp: [{ id: '1', bidfloor: 1 }], tmax: 100, ext: { bidders: [vms.quiet.vmId, vms.cheap.vmId] } });
    expect(answer.status).toBe(204);
    expect(answer.elapsedMs).toBeLessThan(100 + 50);
    const { bids } = await status();
    expect(bids.outcomes.invalid).toBeGreaterThanOrEqual(1);
  });

  it('refuses malformed requests with the field named', async () => {
    const answer = await auction({ id: 'req-3', imp: [], tmax: 100, ext: { bidders: [vms.fast.vmId] } });
    expect(answer.status).toBe(400);
    expect(answer.body.message).toMatch(/^body\.imp: /);
    expect((await auction({ id: 'req-4', imp: [{ id: '1' }], ext: { bidders: [vms.fast.vmId] } })).body.message).toMatch(/^body\.tmax: /);
  });
});
