import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { BidRequest, type BidderOutcome, type BidResponse } from '#events/bids.ts';
import { FrameType } from './bid-protocol.ts';
import type { BidderLink } from './bidder-link.ts';
import { closeServer, listenLocally } from './local-server.ts';
import { readSmallBody } from './request-body.ts';

/** OpenRTB prices are CPM in currency units; the bidder protocol carries millionths. */
const MICROS = 1_000_000;
/** Kept back from `tmax` to build and send the answer, so it leaves before the deadline. */
export const ANSWER_MARGIN_MS = 5;
const MAX_REQUEST_BYTES = 64 * 1024;

export interface AuctionResult {
  status: 200 | 204;
  body?: BidResponse;
  outcomes: Record<string, BidderOutcome>;
}

/**
 * The host's bid relay: takes OpenRTB-style JSON over HTTP (`POST /openrtb2/auction`), asks the
 * bidders in the VMs it names over SBRP (see bid-protocol.ts), each with what is left of `tmax`,
 * and answers in JSON with the bids that came in time, were for an impression of the request and
 * at least its floor. Bidders that miss the deadline are left out; the answer goes at `tmax`
 * minus a small margin at the latest, whatever the bidders do. No bid at all is a 204, as OpenRTB
 * recommends; the outcome per bidder is in `ext.bidders` of a 200 and in the relay's stats.
 */
export class BidRelay {
  private readonly server: http.Server;
  readonly stats = {
    auctions: 0,
    badRequests: 0,
    bids: 0,
    outcomes: { bid: 0, 'no-bid': 0, timeout: 0, 'not-connected': 0, invalid: 0 } as Record<BidderOutcome, number>,
  };
  url = '';

  constructor(private readonly linkOf: (vmId: string) => BidderLink | undefined) {
    this.server = http.createServer((request, response) => void this.handle(request, response));
    this.server.keepAliveTimeout = 30_000;
  }

  async listen(port = 0): Promise<string> {
    this.url = await listenLocally(this.server, port);
    return this.url;
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse) {
    const started = performance.now();
    const fail = (status: number, message: string) => {
      this.stats.badRequests++;
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ message }));
    };
    if (request.method !== 'POST' || request.url !== '/openrtb2/auction') return fail(404, 'POST /openrtb2/auction');
    const text = await readSmallBody(request, MAX_REQUEST_BYTES);
    if (text === undefined) return fail(413, `bid requests are at most ${MAX_REQUEST_BYTES} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return fail(400, 'body: not JSON');
    }
    const parsed = BidRequest.safeParse(json);
    if (!parsed.success) return fail(400, `body.${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
    const result = await this.auction(parsed.data, started);
    if (result.status === 204) return void response.writeHead(204).end();
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result.body));
  }

  /** Runs one auction; `started` is when the request arrived (performance.now()), from which `tmax` counts. */
  async auction(request: BidRequest, started = performance.now()): Promise<AuctionResult> {
    this.stats.auctions++;
    const floors = new Map(request.imp.map((imp) => [imp.id, Math.round(imp.bidfloor * MICROS)]));
    const impressions = request.imp.map((imp) => ({ id: imp.id, floorMicros: floors.get(imp.id)! }));
    const remaining = Math.max(0, request.tmax - ANSWER_MARGIN_MS - (performance.now() - started));
    const outcomes: Record<string, BidderOutcome> = {};
    const seatbid: BidResponse['seatbid'] = [];
    await Promise.all(
      [...new Set(request.ext.bidders)].map(async (vmId) => {
        outcomes[vmId] = await (async (): Promise<BidderOutcome> => {
          const link = this.linkOf(vmId);
          if (!link?.connected) return 'not-connected';
          const answer = await link.ask({ type: FrameType.BidRequest, deadlineMs: remaining, impressions }, remaining);
          if (!answer) return 'timeout';
          if (answer.type === FrameType.NoBid || answer.bids.length === 0) return 'no-bid';
          const valid = answer.bids.filter((bid) => floors.has(bid.impressionId) && bid.priceMicros >= floors.get(bid.impressionId)!);
          if (valid.length === 0) return 'invalid';
          seatbid.push({
            seat: vmId,
            bid: valid.map((bid, index) => ({
              id: `${request.id}-${vmId}-${index}`,
              impid: bid.impressionId,
              price: bid.priceMicros / MICROS,
              adm: bid.markup,
              crid: bid.creativeId,
            })),
          });
          return 'bid';
        })();
      }),
    );
    for (const outcome of Object.values(outcomes)) this.stats.outcomes[outcome]++;
    if (seatbid.length === 0) return { status: 204, outcomes };
    this.stats.bids += seatbid.reduce((sum, seat) => sum + seat.bid.length, 0);
    seatbid.sort((a, b) => a.seat.localeCompare(b.seat));
    return { status: 200, outcomes, body: { id: request.id, seatbid, ext: { bidders: outcomes, elapsedMs: Math.round(performance.now() - started) } } };
  }
}
