import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { BidRequest } from '#events/bids.ts';
import { FrameType } from '../host-agent/bid-protocol.ts';
import { BidderLink } from '../host-agent/bidder-link.ts';
import { BidRelay, toSbrpRequest } from '../host-agent/bid-relay.ts';
import { ExchangeTokens } from '../host-agent/exchange-tokens.ts';
import { mintExchangeToken } from '../tokens/exchange-tokens.ts';
import { startTsProcess } from '../local/processes.ts';
import { sampleBidRequest } from './openrtb-sample.ts';

/**
 * What the bid relay adds: for each bidder count, the latency of an auction through the relay
 * (a whole OpenRTB 2.6 request as JSON over HTTP with an exchange token, checked, the tenant's
 * ownership of every bidder checked, SBRP/2 to every bidder, JSON out) beside a direct SBRP/2 call
 * with the same request to one bidder, one request at a time; then auctions per second with many
 * in flight. Bidders run in a process of their own and answer at once, so what is measured is the
 * relay and the sockets.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: {
    bidders: { type: 'string', default: '1,4,16' },
    requests: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '32' },
  },
});
const bidderCounts = values.bidders.split(',').map(Number);
const requests = Number(values.requests);
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
if (bidderCounts.some((count) => !(count >= 1 && count <= 64)) || !(requests >= 100) || !(seconds > 0) || !(concurrency >= 1)) {
  throw new Error('--bidders takes counts from 1 to 64, --requests >= 100, --seconds > 0, --concurrency >= 1');
}

const TMAX = 200;
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });

const token = mintExchangeToken();
const tokens = ExchangeTokens.of({ [token]: 'bench' });

function post(url: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
      },
      (response) => {
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

const rows: string[] = [];
let requestBytes = 0;
for (const count of bidderCounts) {
  const links = await Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const link = new BidderLink(`vm-bench-${index}`, (message) => console.error(message));
      await link.listen();
      return link;
    }),
  );
  const bidders = await startTsProcess({ entry: 'bench/bidders.ts', args: links.map((link) => String(link.port)), readyPrefix: 'BIDDERS_READY' });
  while (links.some((link) => !link.connected)) await new Promise((resolve) => setTimeout(resolve, 10));
  const byVm = new Map(links.map((link) => [link.vmId, link]));
  const relay = new BidRelay({ linkOf: (vmId) => byVm.get(vmId), tenantOf: (vmId) => (byVm.has(vmId) ? 'bench' : undefined), tokens });
  const url = `${await relay.listen()}/openrtb2/auction`;
  const body = JSON.stringify(
    sampleBidRequest(
      links.map((link) => link.vmId),
      TMAX,
    ),
  );
  requestBytes = Buffer.byteLength(body);
  // The direct call sends the same request, as SBRP/2, to one bidder.
  const { requestId: _, ...direct2 } = toSbrpRequest(BidRequest.parse(JSON.parse(body)), 0, TMAX);

  // Warm both paths (JIT, sockets), then time one request at a time.
  for (let i = 0; i < 200; i++) {
    await links[0]!.ask(direct2, TMAX);
    await post(url, body);
  }
  const direct: number[] = [];
  const relayed: number[] = [];
  for (let i = 0; i < requests; i++) {
    let started = performance.now();
    const answer = await links[0]!.ask(direct2, TMAX);
    direct.push(performance.now() - started);
    if (answer?.type !== FrameType.BidResponseV2) throw new Error('the direct call got no bid');
    started = performance.now();
    const status = await post(url, body);
    relayed.push(performance.now() - started);
    if (status !== 200) throw new Error(`the relay answered ${status}`);
  }
  direct.sort((a, b) => a - b);
  relayed.sort((a, b) => a - b);

  // Throughput: `concurrency` auctions in flight for the duration.
  let done = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        if ((await post(url, body)) !== 200) throw new Error('the relay dropped a bid under load');
        done++;
      }
    }),
  );
  const perSecond = done / ((performance.now() - started) / 1000);
  const timeouts = relay.stats.outcomes.timeout;

  rows.push(
    `${String(count).padStart(7)}  ${percentile(direct, 50).toFixed(3).padStart(8)} ${percentile(direct, 99).toFixed(3).padStart(8)}  ${percentile(relayed, 50).toFixed(3).padStart(8)} ${percentile(relayed, 99).toFixed(3).padStart(8)}  ${(percentile(relayed, 50) - percentile(direct, 50)).toFixed(3).padStart(8)} ${(percentile(relayed, 99) - percentile(direct, 99)).toFixed(3).padStart(8)}  ${perSecond.toFixed(0).padStart(8)}  ${String(timeouts).padStart(8)}`,
  );
  console.error(rows.at(-1));
  await relay.close();
  await Promise.all(links.map((link) => link.close()));
  await bidders.stop();
}
agent.destroy();

console.log(
  `bench:bids  auction latency, one at a time (${requests} requests, ms), and auctions/s with ${concurrency} in flight for ${seconds} s; tmax ${TMAX} ms; a whole OpenRTB 2.6 request of ${requestBytes} bytes (2 impressions: banner, video), SBRP/2 bidders`,
);
console.log('bidders    direct p50    p99     relay p50    p99    added p50    p99    auctions/s  timeouts');
for (const row of rows) console.log(row);
