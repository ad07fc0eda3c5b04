import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Bid, BidRequest, type BidderOutcome, type BidResponse } from '#events/bids.ts';
import { type BidderAnswer, type BidRequestV2Frame, encodeFrame, FrameType, ProtocolError, type SectionName } from './bid-protocol.ts';
import { type BidderLink, nextRequestId } from './bidder-link.ts';
import type { ExchangeTokens } from './exchange-tokens.ts';
import type { RelayCertificate } from './relay-certificate.ts';
import { closeServer } from './local-server.ts';
import { readSmallBody } from './request-body.ts';

/** OpenRTB prices are CPM in currency units; the bidder protocol carries millionths. */
const MICROS = 1_000_000;
/** Kept back from `tmax` to build and send the answer, so it leaves before the deadline. */
export const ANSWER_MARGIN_MS = 5;
export const MAX_REQUEST_BYTES = 64 * 1024;

export interface AuctionResult {
  status: 200 | 204;
  body?: BidResponse;
  outcomes: Record<string, BidderOutcome>;
}

export interface BidRelayOptions {
  /** The bidder link of a VM on this host. */
  linkOf: (vmId: string) => BidderLink | undefined;
  /** The tenant of a VM on this host (undefined: no such VM here). */
  tenantOf: (vmId: string) => string | undefined;
  /** Which exchange tokens it takes, and for which tenant. */
  tokens: ExchangeTokens;
  /** Its TLS certificate: with one it serves HTTPS only. */
  certificate?: RelayCertificate;
}

/** Where the relay listens: `127.0.0.1` and any free port unless the operator says. */
export interface RelayListen {
  address: string;
  port: number;
}

/** What a bid is worth to the answer, once checked. */
interface Candidate {
  currency: string;
  bids: Bid[];
}

const sectionNames = ['site', 'app', 'device', 'user', 'regs', 'source'] as const satisfies readonly SectionName[];

/** The SBRP/2 request for an OpenRTB request (see bid-protocol.ts): checked fields in binary, the open objects as JSON. */
export function toSbrpRequest(request: BidRequest, requestId: number, deadlineMs: number): BidRequestV2Frame {
  const { id, imp, site, app, device, user, regs, source, at, test, tmax, cur, ext, ...rest } = request;
  const { bidders: _, ...extRest } = ext;
  const sections: BidRequestV2Frame['sections'] = {};
  const objects = { site, app, device, user, regs, source };
  for (const name of sectionNames) if (objects[name] !== undefined) sections[name] = JSON.stringify(objects[name]);
  if (Object.keys(rest).length > 0 || Object.keys(extRest).length > 0) {
    sections.request = JSON.stringify(Object.keys(extRest).length > 0 ? { ...rest, ext: extRest } : rest);
  }
  return {
    type: FrameType.BidRequestV2,
    requestId,
    deadlineMs,
    tmax,
    auctionType: at,
    test: test === 1,
    id,
    currencies: cur,
    impressions: imp.map(({ id: impressionId, bidfloor, bidfloorcur, secure, instl, ...others }) => {
      const { banner, video } = others;
      return {
        id: impressionId,
        floorMicros: Math.round(bidfloor * MICROS),
        floorCurrency: bidfloorcur,
        secure: secure === 1,
        interstitial: instl === 1,
        ...(banner
          ? {
              banner: banner.format?.length
                ? banner.format.map((format) => ({ w: format.w, h: format.h }))
                : banner.w !== undefined && banner.h !== undefined
                  ? [{ w: banner.w, h: banner.h }]
                  : [],
            }
          : {}),
        ...(video
          ? {
              video: {
                minDuration: video.minduration,
                maxDuration: video.maxduration ?? 0,
                w: video.w ?? 0,
                h: video.h ?? 0,
                plcmt: video.plcmt ?? 0,
                protocols: video.protocols ?? [],
                mimes: video.mimes,
              },
            }
          : {}),
        native: others.native !== undefined,
        audio: others.audio !== undefined,
        json: JSON.stringify(others),
      };
    }),
    sections,
  };
}

/**
 * The host's bid relay: takes OpenRTB 2.6 JSON over HTTP (`POST /openrtb2/auction`) from an
 * exchange that presents an exchange token (see exchange-tokens.ts), checks that the token's
 * tenant owns every VM named in `ext.bidders`, asks those VMs' bidders over SBRP (see
 * bid-protocol.ts; the whole request to SBRP/2 bidders), each with what is left of `tmax`, and
 * answers in JSON with the bids that came in time, were for an impression of the request, in one
 * of its currencies and at least its floor. Bidders that miss the deadline are left out; the
 * answer goes at `tmax` minus a small margin at the latest, whatever the bidders do. No bid at
 * all is a 204, as OpenRTB recommends; the outcome per bidder is in `ext.bidders` of a 200 and in
 * the relay's stats.
 */
export class BidRelay {
  private readonly server: http.Server | https.Server;
  readonly stats = {
    auctions: 0,
    badRequests: 0,
    unauthorized: 0,
    forbidden: 0,
    bids: 0,
    outcomes: { bid: 0, 'no-bid': 0, timeout: 0, 'not-connected': 0, invalid: 0 } as Record<BidderOutcome, number>,
  };
  url = '';

  constructor(private readonly options: BidRelayOptions) {
    const handler = (request: http.IncomingMessage, response: http.ServerResponse) => void this.handle(request, response);
    this.server = options.certificate ? https.createServer(options.certificate.serverOptions(), handler) : http.createServer(handler);
    this.server.keepAliveTimeout = 30_000;
  }

  /** Listens where told, or on a listening socket made elsewhere (in the host's namespace); returns the base URL. */
  async listen(where: RelayListen = { address: '127.0.0.1', port: 0 }, on?: net.Server): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      if (on) this.server.listen(on, resolve);
      else this.server.listen(where.port, where.address, resolve);
    });
    const { port } = this.server.address() as AddressInfo;
    if (this.options.certificate) this.options.certificate.follow(this.server as https.Server);
    this.url = `${this.options.certificate ? 'https' : 'http'}://${where.address}:${port}`;
    return this.url;
  }

  close(): Promise<void> {
    this.options.certificate?.stop();
    return closeServer(this.server);
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse) {
    const started = performance.now();
    const fail = (status: number, message: string, headers: Record<string, string> = {}) => {
      if (status === 401) this.stats.unauthorized++;
      else if (status === 403) this.stats.forbidden++;
      else this.stats.badRequests++;
      response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ message }));
    };
    if (request.method !== 'POST' || request.url !== '/openrtb2/auction') return fail(404, 'POST /openrtb2/auction');
    const authentication = this.options.tokens.authenticate(request.headers.authorization);
    if ('refused' in authentication) {
      const error = request.headers.authorization ? ', error="invalid_token"' : '';
      // The body is not read: the connection closes after the answer.
      return fail(401, authentication.refused, { 'www-authenticate': `Bearer realm="stratoplane-bid-relay"${error}`, connection: 'close' });
    }
    const tooLarge = () => fail(413, `bid requests are at most ${MAX_REQUEST_BYTES} bytes`, { connection: 'close' });
    if (Number(request.headers['content-length'] ?? 0) > MAX_REQUEST_BYTES) return tooLarge();
    const text = await readSmallBody(request, MAX_REQUEST_BYTES);
    if (text === undefined) return tooLarge();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return fail(400, 'body: not JSON');
    }
    const parsed = BidRequest.safeParse(json);
    if (!parsed.success) return fail(400, `body.${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
    const { tenantId } = authentication;
    const bidders = parsed.data.ext.bidders;
    for (let index = 0; index < bidders.length; index++) {
      // Another tenant's VM and no VM at all look the same: the answer says nothing about others.
      if (this.options.tenantOf(bidders[index]!) !== tenantId) {
        return fail(403, `body.ext.bidders.${index}: ${bidders[index]} is not a VM of tenant ${tenantId} on this host`);
      }
    }
    let result: AuctionResult;
    try {
      result = await this.auction(parsed.data, started);
    } catch (error) {
      if (error instanceof ProtocolError) return fail(400, `body: ${error.message}`);
      throw error;
    }
    if (result.status === 204) return void response.writeHead(204).end();
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result.body));
  }

  /**
   * Runs one auction among the bidders `request.ext.bidders` names (whoever owns them: the caller
   * checks); `started` is when the request arrived (performance.now()), from which `tmax` counts.
   */
  async auction(request: BidRequest, started = performance.now()): Promise<AuctionResult> {
    this.stats.auctions++;
    const floors = new Map(request.imp.map((imp) => [imp.id, { micros: Math.round(imp.bidfloor * MICROS), currency: imp.bidfloorcur }]));
    const remaining = Math.max(0, request.tmax - ANSWER_MARGIN_MS - (performance.now() - started));
    const requestId = nextRequestId();
    // Encoded once per SBRP version, and only if a bidder speaks it; every bidder gets the same bytes.
    const encoded: Partial<Record<1 | 2, Buffer>> = {};
    const frameFor = (version: number): Buffer => {
      const key = version >= 2 ? 2 : 1;
      let frame = encoded[key];
      if (frame) return frame;
      frame =
        key === 2
          ? encodeFrame(toSbrpRequest(request, requestId, remaining))
          : encodeFrame({
              type: FrameType.BidRequest,
              requestId,
              deadlineMs: remaining,
              impressions: request.imp.map((imp) => ({ id: imp.id, floorMicros: floors.get(imp.id)!.micros })),
            });
      encoded[key] = frame;
      return frame;
    };

    const outcomes: Record<string, BidderOutcome> = {};
    const answers = new Map<string, BidderAnswer>();
    const asked: [string, BidderLink][] = [];
    try {
      await new Promise<void>((resolve) => {
        let pending = 0;
        let timer: NodeJS.Timeout | undefined;
        for (const vmId of new Set(request.ext.bidders)) {
          const link = this.options.linkOf(vmId);
          const sent =
            link?.connected &&
            link.send(frameFor(link.version), requestId, (answer) => {
              answers.set(vmId, answer);
              if (--pending === 0) {
                clearTimeout(timer);
                resolve();
              }
            });
          if (!sent) {
            outcomes[vmId] = 'not-connected';
            continue;
          }
          pending++;
          asked.push([vmId, link]);
        }
        if (pending === 0) resolve();
        // One timer for the auction: whoever has not answered by then is left out.
        else timer = setTimeout(resolve, remaining);
      });
    } finally {
      for (const [, link] of asked) link.forget(requestId);
    }

    const candidates = new Map<string, Candidate>();
    for (const [vmId] of asked) {
      const answer = answers.get(vmId);
      if (!answer) outcomes[vmId] = 'timeout';
      else if (answer.type === FrameType.NoBid || answer.bids.length === 0) outcomes[vmId] = 'no-bid';
      else {
        const candidate = checkAnswer(answer, request, floors, vmId);
        if (candidate) candidates.set(vmId, candidate);
        else outcomes[vmId] = 'invalid';
      }
    }
    // One currency per answer (OpenRTB `cur`): the first of the request's that a valid bid is in.
    const currency = request.cur.find((code) => [...candidates.values()].some((candidate) => candidate.currency === code)) ?? request.cur[0]!;
    const seatbid: BidResponse['seatbid'] = [];
    for (const [vmId, candidate] of candidates) {
      if (candidate.currency !== currency) {
        outcomes[vmId] = 'invalid';
        continue;
      }
      outcomes[vmId] = 'bid';
      seatbid.push({ seat: vmId, bid: candidate.bids });
    }
    for (const outcome of Object.values(outcomes)) this.stats.outcomes[outcome]++;
    if (seatbid.length === 0) return { status: 204, outcomes };
    this.stats.bids += seatbid.reduce((sum, seat) => sum + seat.bid.length, 0);
    seatbid.sort((a, b) => (a.seat < b.seat ? -1 : a.seat > b.seat ? 1 : 0));
    return {
      status: 200,
      outcomes,
      body: { id: request.id, cur: currency, seatbid, ext: { bidders: outcomes, elapsedMs: Math.round(performance.now() - started) } },
    };
  }
}

/**
 * The bids of an answer that are for an impression of the request, in one of its currencies and
 * at least the floor when in the floor's currency (another one the exchange converts and checks),
 * as OpenRTB bids of seat `vmId`; undefined if none is. An SBRP/1 bid is in its impression's floor
 * currency; of SBRP/1 bids on impressions with different floor currencies, the first currency's
 * are kept.
 */
function checkAnswer(
  answer: Exclude<BidderAnswer, { type: typeof FrameType.NoBid }>,
  request: BidRequest,
  floors: Map<string, { micros: number; currency: string }>,
  vmId: string,
): Candidate | undefined {
  let currency: string | undefined;
  const bids: Bid[] = [];
  for (const bid of answer.bids) {
    const floor = floors.get(bid.impressionId);
    if (!floor) continue;
    const bidCurrency = answer.type === FrameType.BidResponseV2 ? answer.currency : floor.currency;
    if (!request.cur.includes(bidCurrency) || (bidCurrency === floor.currency && bid.priceMicros < floor.micros)) continue;
    if (currency !== undefined && bidCurrency !== currency) continue;
    currency = bidCurrency;
    const out: Bid = {
      id: `${request.id}-${vmId}-${bids.length}`,
      impid: bid.impressionId,
      price: bid.priceMicros / MICROS,
      adm: bid.markup,
      crid: bid.creativeId,
    };
    if ('w' in bid) {
      if (bid.w > 0 || bid.h > 0) {
        out.w = bid.w;
        out.h = bid.h;
      }
      if (bid.advertiserDomains.length > 0) out.adomain = bid.advertiserDomains;
      if (bid.dealId) out.dealid = bid.dealId;
      if (bid.nurl) out.nurl = bid.nurl;
      if (bid.burl) out.burl = bid.burl;
    }
    bids.push(out);
  }
  return currency === undefined ? undefined : { currency, bids };
}
