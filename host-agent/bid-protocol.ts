/**
 * The relay ↔ bidder protocol (SBRP, "Stratoplane bid relay protocol"), over one TCP connection
 * per bidder VM, many requests in flight on it at once. Every frame:
 *
 *   u32 length     bytes after this field (at most MAX_FRAME_BYTES)
 *   u8  type       below
 *   u32 requestId  chosen by the relay; a response carries its request's (0 in a hello)
 *   …   payload    by type, below
 *
 * All integers are big-endian. Prices are integers in millionths of a currency unit (CPM), so no
 * float crosses the wire. `text8`/`text16`/`text32` are UTF-8 text after a u8/u16/u32 byte length;
 * `cur` is 3 ASCII bytes (ISO 4217, e.g. `USD`).
 *
 * SBRP/1 (types 1-3), what every bidder speaks:
 *   1 bid request (relay → bidder): u16 deadline (ms the bidder has left), u8 impression count,
 *     then per impression text8 id, u32 floor.
 *   2 bid response (bidder → relay): u8 bid count, then per bid text8 impression id, u32 price,
 *     text8 creative id, text16 markup.
 *   3 no bid (bidder → relay): no payload.
 *
 * SBRP/2 (types 4-6) carries the whole OpenRTB 2.6 request. A bidder opts in by sending a hello
 * as its first frame; the relay answers with its own hello and from then on sends that bidder
 * type 5 instead of type 1. A bidder that never says hello is an SBRP/1 bidder, as before.
 *   4 hello (both ways): u8 version (2).
 *   5 bid request (relay → bidder):
 *       u16 deadline, u16 tmax (as the exchange sent it), u8 auction type (OpenRTB `at`),
 *       u8 flags (bit 0: test), text16 request id,
 *       u8 currency count, cur each (the request's `cur`, USD when it named none),
 *       u8 impression count, per impression:
 *         text8 id, u32 floor, cur floor currency,
 *         u8 flags (bit 0 secure, 1 interstitial, 2 banner, 3 video, 4 native, 5 audio),
 *         if banner: u8 format count, per format u16 w, u16 h,
 *         if video: u16 minduration, u16 maxduration, u16 w, u16 h, u8 plcmt, u8 protocol count,
 *           u8 each, u8 mime count, text8 each,
 *         text16 the impression's other fields as a JSON object (banner, video, native, audio,
 *           pmp, tagid, ext… as the exchange sent them; `{}` when none),
 *       u8 section count, per section u8 tag, text32 JSON object: 1 site, 2 app, 3 device,
 *         4 user, 5 regs, 6 source, 7 the request's other top-level fields (bcat, badv, bapp,
 *         wseat, bseat, wlang, allimps, ext…). A bidder skips tags it does not know.
 *   6 bid response (bidder → relay): cur (of every bid in the frame), u8 bid count, per bid:
 *       text8 impression id, u32 price, text8 creative id, u16 w, u16 h,
 *       u8 advertiser domain count, text8 each, text8 deal id (empty: none),
 *       text16 win notice URL (nurl), text16 billing URL (burl) (empty: none), text32 markup.
 *   3 no bid, as in SBRP/1.
 *
 * Binary and length-prefixed so the relay routes answers by a fixed-offset id and a bidder reads
 * impressions, floors, currencies and sizes without a JSON parser; the descriptive objects
 * (site or app, device, user, regs) stay JSON, verbatim, since OpenRTB extends them freely.
 * See docs/host-services.md#bid-relay.
 */

export const FrameType = { BidRequest: 1, BidResponse: 2, NoBid: 3, Hello: 4, BidRequestV2: 5, BidResponseV2: 6 } as const;

/** The highest SBRP version the relay speaks. */
export const SBRP_VERSION = 2;

export interface BidRequestFrame {
  type: typeof FrameType.BidRequest;
  requestId: number;
  deadlineMs: number;
  impressions: { id: string; floorMicros: number }[];
}

export interface BidResponseFrame {
  type: typeof FrameType.BidResponse;
  requestId: number;
  bids: { impressionId: string; priceMicros: number; creativeId: string; markup: string }[];
}

export interface NoBidFrame {
  type: typeof FrameType.NoBid;
  requestId: number;
}

export interface HelloFrame {
  type: typeof FrameType.Hello;
  requestId: 0;
  version: number;
}

/** OpenRTB section tags of an SBRP/2 bid request. */
export const SectionTag = { site: 1, app: 2, device: 3, user: 4, regs: 5, source: 6, request: 7 } as const;
export type SectionName = keyof typeof SectionTag;

export interface ImpressionV2 {
  id: string;
  floorMicros: number;
  floorCurrency: string;
  secure: boolean;
  interstitial: boolean;
  /** Banner sizes (OpenRTB `banner.format`, or `banner.w`×`banner.h`). */
  banner?: { w: number; h: number }[];
  video?: { minDuration: number; maxDuration: number; w: number; h: number; plcmt: number; protocols: number[]; mimes: string[] };
  native: boolean;
  audio: boolean;
  /** The impression's fields other than id, floor, its currency, secure and instl, as JSON. */
  json: string;
}

export interface BidRequestV2Frame {
  type: typeof FrameType.BidRequestV2;
  requestId: number;
  deadlineMs: number;
  tmax: number;
  auctionType: number;
  test: boolean;
  id: string;
  currencies: string[];
  impressions: ImpressionV2[];
  /** JSON objects by section; absent sections are not sent. */
  sections: Partial<Record<SectionName, string>>;
}

export interface BidV2 {
  impressionId: string;
  priceMicros: number;
  creativeId: string;
  w: number;
  h: number;
  advertiserDomains: string[];
  dealId: string;
  nurl: string;
  burl: string;
  markup: string;
}

export interface BidResponseV2Frame {
  type: typeof FrameType.BidResponseV2;
  requestId: number;
  currency: string;
  bids: BidV2[];
}

export type Frame = BidRequestFrame | BidResponseFrame | NoBidFrame | HelloFrame | BidRequestV2Frame | BidResponseV2Frame;
/** What a bidder may answer a request with. */
export type BidderAnswer = BidResponseFrame | BidResponseV2Frame | NoBidFrame;

export class ProtocolError extends Error {}

/** Frames above this are refused: nothing legitimate comes near it. */
export const MAX_FRAME_BYTES = 256 * 1024;

const CURRENCY = /^[A-Z]{3}$/;
const sectionNames = Object.fromEntries(Object.entries(SectionTag).map(([name, tag]) => [tag, name])) as Record<number, SectionName>;

/** Writes into one growing buffer: a frame is built without a Buffer per field. */
class Writer {
  private buffer = Buffer.allocUnsafe(512);
  private offset = 4;
  private room(bytes: number) {
    if (this.offset + bytes > MAX_FRAME_BYTES + 4) throw new ProtocolError(`frame is over the ${MAX_FRAME_BYTES}-byte limit`);
    if (this.offset + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.offset + bytes));
    this.buffer.copy(grown, 0, 0, this.offset);
    this.buffer = grown;
  }
  u8(value: number, what = 'a byte') {
    if (!Number.isInteger(value) || value < 0 || value > 0xff) throw new ProtocolError(`${what} must be an integer from 0 to 255 (got ${value})`);
    this.room(1);
    this.buffer[this.offset++] = value;
  }
  u16(value: number, what = 'a u16') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new ProtocolError(`${what} must be an integer from 0 to 65535 (got ${value})`);
    this.room(2);
    this.buffer.writeUInt16BE(value, this.offset);
    this.offset += 2;
  }
  u32(value: number, what = 'a u32') {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new ProtocolError(`${what} must be an integer from 0 to 2^32-1 (got ${value})`);
    this.room(4);
    this.buffer.writeUInt32BE(value, this.offset);
    this.offset += 4;
  }
  count(length: number, what: string) {
    if (length > 255) throw new ProtocolError(`at most 255 ${what}`);
    this.u8(length);
  }
  currency(code: string) {
    if (!CURRENCY.test(code)) throw new ProtocolError(`a currency is 3 capital letters (ISO 4217), not ${JSON.stringify(code)}`);
    this.room(3);
    this.buffer.write(code, this.offset, 'latin1');
    this.offset += 3;
  }
  text(value: string, lengthBytes: 1 | 2 | 4, what = 'text') {
    const limit = 2 ** (8 * lengthBytes);
    // One pass when the text surely fits (UTF-8 takes at most 3 bytes per UTF-16 unit): write it
    // after room for its length, then fill the length in.
    if (value.length * 3 < limit && this.offset + lengthBytes + value.length * 3 <= MAX_FRAME_BYTES + 4) {
      this.room(lengthBytes + value.length * 3);
      const at = this.offset;
      const length = this.buffer.write(value, at + lengthBytes, 'utf8');
      if (lengthBytes === 1) this.buffer[at] = length;
      else if (lengthBytes === 2) this.buffer.writeUInt16BE(length, at);
      else this.buffer.writeUInt32BE(length, at);
      this.offset = at + lengthBytes + length;
      return;
    }
    const length = Buffer.byteLength(value, 'utf8');
    if (length >= limit) throw new ProtocolError(`${what} of ${length} bytes does not fit a ${lengthBytes}-byte length`);
    if (lengthBytes === 1) this.u8(length);
    else if (lengthBytes === 2) this.u16(length);
    else this.u32(length);
    this.room(length);
    this.offset += this.buffer.write(value, this.offset, 'utf8');
  }
  /** The frame, its length prefix filled in. */
  done(): Buffer {
    this.buffer.writeUInt32BE(this.offset - 4, 0);
    return this.buffer.subarray(0, this.offset);
  }
}

class Reader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}
  private need(bytes: number, what: string) {
    if (this.offset + bytes > this.buffer.length) throw new ProtocolError(`frame ends early (in ${what})`);
  }
  u8(what = 'a byte') {
    this.need(1, what);
    return this.buffer[this.offset++]!;
  }
  u16(what = 'a u16') {
    this.need(2, what);
    const value = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }
  u32(what = 'a u32') {
    this.need(4, what);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }
  currency(what: string) {
    this.need(3, what);
    const code = this.buffer.toString('latin1', this.offset, this.offset + 3);
    this.offset += 3;
    if (!CURRENCY.test(code)) throw new ProtocolError(`${what} is not a currency code`);
    return code;
  }
  text(lengthBytes: 1 | 2 | 4, what = 'text') {
    const length = lengthBytes === 1 ? this.u8(what) : lengthBytes === 2 ? this.u16(what) : this.u32(what);
    this.need(length, what);
    const value = this.buffer.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
  list<T>(read: () => T): T[] {
    const length = this.u8();
    const items: T[] = new Array(length);
    for (let i = 0; i < length; i++) items[i] = read();
    return items;
  }
  end() {
    if (this.offset !== this.buffer.length) throw new ProtocolError('frame has trailing bytes');
  }
}

const ImpressionFlag = { secure: 1, interstitial: 2, banner: 4, video: 8, native: 16, audio: 32 } as const;

function writeImpressionV2(body: Writer, impression: ImpressionV2) {
  body.text(impression.id, 1, 'an impression id');
  body.u32(impression.floorMicros, 'a floor');
  body.currency(impression.floorCurrency);
  body.u8(
    (impression.secure ? ImpressionFlag.secure : 0) |
      (impression.interstitial ? ImpressionFlag.interstitial : 0) |
      (impression.banner ? ImpressionFlag.banner : 0) |
      (impression.video ? ImpressionFlag.video : 0) |
      (impression.native ? ImpressionFlag.native : 0) |
      (impression.audio ? ImpressionFlag.audio : 0),
  );
  if (impression.banner) {
    body.count(impression.banner.length, 'banner formats');
    for (const format of impression.banner) {
      body.u16(format.w, 'a banner width');
      body.u16(format.h, 'a banner height');
    }
  }
  const video = impression.video;
  if (video) {
    body.u16(video.minDuration, 'video minduration');
    body.u16(video.maxDuration, 'video maxduration');
    body.u16(video.w, 'a video width');
    body.u16(video.h, 'a video height');
    body.u8(video.plcmt, 'video plcmt');
    body.count(video.protocols.length, 'video protocols');
    for (const protocol of video.protocols) body.u8(protocol, 'a video protocol');
    body.count(video.mimes.length, 'video mimes');
    for (const mime of video.mimes) body.text(mime, 1, 'a video mime type');
  }
  body.text(impression.json, 2, "an impression's JSON");
}

function readImpressionV2(reader: Reader): ImpressionV2 {
  const id = reader.text(1, 'an impression id');
  const floorMicros = reader.u32('a floor');
  const floorCurrency = reader.currency('a floor currency');
  const flags = reader.u8('impression flags');
  const impression: ImpressionV2 = {
    id,
    floorMicros,
    floorCurrency,
    secure: (flags & ImpressionFlag.secure) !== 0,
    interstitial: (flags & ImpressionFlag.interstitial) !== 0,
    native: (flags & ImpressionFlag.native) !== 0,
    audio: (flags & ImpressionFlag.audio) !== 0,
    json: '',
  };
  if (flags & ImpressionFlag.banner) {
    const formats = reader.u8('the banner format count');
    impression.banner = [];
    for (let i = 0; i < formats; i++) impression.banner.push({ w: reader.u16('a banner width'), h: reader.u16('a banner height') });
  }
  if (flags & ImpressionFlag.video) {
    impression.video = {
      minDuration: reader.u16('video minduration'),
      maxDuration: reader.u16('video maxduration'),
      w: reader.u16('a video width'),
      h: reader.u16('a video height'),
      plcmt: reader.u8('video plcmt'),
      protocols: reader.list(() => reader.u8('a video protocol')),
      mimes: reader.list(() => reader.text(1, 'a video mime type')),
    };
  }
  impression.json = reader.text(2, "an impression's JSON");
  return impression;
}

/** Encodes a frame, length prefix included; a value that does not fit its field is a ProtocolError naming it. */
export function encodeFrame(frame: Frame): Buffer {
  const body = new Writer();
  body.u8(frame.type);
  body.u32(frame.requestId, 'the request id');
  switch (frame.type) {
    case FrameType.BidRequest:
      body.u16(Math.max(0, Math.min(65_535, Math.round(frame.deadlineMs))));
      body.count(frame.impressions.length, 'impressions');
      for (const impression of frame.impressions) {
        body.text(impression.id, 1, 'an impression id');
        body.u32(impression.floorMicros, 'a floor');
      }
      break;
    case FrameType.BidResponse:
      body.count(frame.bids.length, 'bids');
      for (const bid of frame.bids) {
        body.text(bid.impressionId, 1, 'an impression id');
        body.u32(bid.priceMicros, 'a price');
        body.text(bid.creativeId, 1, 'a creative id');
        body.text(bid.markup, 2, 'markup');
      }
      break;
    case FrameType.Hello:
      body.u8(frame.version, 'the version');
      break;
    case FrameType.BidRequestV2: {
      body.u16(Math.max(0, Math.min(65_535, Math.round(frame.deadlineMs))));
      body.u16(frame.tmax, 'tmax');
      body.u8(frame.auctionType, 'the auction type');
      body.u8(frame.test ? 1 : 0);
      body.text(frame.id, 2, 'the request id');
      body.count(frame.currencies.length, 'currencies');
      for (const currency of frame.currencies) body.currency(currency);
      body.count(frame.impressions.length, 'impressions');
      for (const impression of frame.impressions) writeImpressionV2(body, impression);
      const sections = Object.entries(frame.sections) as [SectionName, string][];
      body.u8(sections.length);
      for (const [name, json] of sections) {
        const tag = SectionTag[name];
        if (tag === undefined) throw new ProtocolError(`unknown section ${name}`);
        body.u8(tag);
        body.text(json, 4, `the ${name} section`);
      }
      break;
    }
    case FrameType.BidResponseV2:
      body.currency(frame.currency);
      body.count(frame.bids.length, 'bids');
      for (const bid of frame.bids) {
        body.text(bid.impressionId, 1, 'an impression id');
        body.u32(bid.priceMicros, 'a price');
        body.text(bid.creativeId, 1, 'a creative id');
        body.u16(bid.w, 'a bid width');
        body.u16(bid.h, 'a bid height');
        body.count(bid.advertiserDomains.length, 'advertiser domains');
        for (const domain of bid.advertiserDomains) body.text(domain, 1, 'an advertiser domain');
        body.text(bid.dealId, 1, 'a deal id');
        body.text(bid.nurl, 2, 'nurl');
        body.text(bid.burl, 2, 'burl');
        body.text(bid.markup, 4, 'markup');
      }
      break;
  }
  return body.done();
}

/** Decodes one frame's bytes after its length prefix. */
export function decodeBody(body: Buffer): Frame {
  const reader = new Reader(body);
  const type = reader.u8('the frame type');
  const requestId = reader.u32('the request id');
  let frame: Frame;
  switch (type) {
    case FrameType.BidRequest: {
      const deadlineMs = reader.u16('the deadline');
      const impressions = reader.list(() => ({ id: reader.text(1, 'an impression id'), floorMicros: reader.u32('a floor') }));
      frame = { type, requestId, deadlineMs, impressions };
      break;
    }
    case FrameType.BidResponse: {
      const bids = reader.list(() => ({
        impressionId: reader.text(1, 'an impression id'),
        priceMicros: reader.u32('a price'),
        creativeId: reader.text(1, 'a creative id'),
        markup: reader.text(2, 'markup'),
      }));
      frame = { type, requestId, bids };
      break;
    }
    case FrameType.NoBid:
      frame = { type, requestId };
      break;
    case FrameType.Hello:
      if (requestId !== 0) throw new ProtocolError('a hello carries request id 0');
      frame = { type, requestId, version: reader.u8('the version') };
      break;
    case FrameType.BidRequestV2: {
      const deadlineMs = reader.u16('the deadline');
      const tmax = reader.u16('tmax');
      const auctionType = reader.u8('the auction type');
      const test = (reader.u8('request flags') & 1) === 1;
      const id = reader.text(2, 'the request id');
      const currencies = reader.list(() => reader.currency('a currency'));
      const impressions = reader.list(() => readImpressionV2(reader));
      const sections: BidRequestV2Frame['sections'] = {};
      const count = reader.u8('the section count');
      for (let i = 0; i < count; i++) {
        const tag = reader.u8('a section tag');
        const json = reader.text(4, 'a section');
        const name = sectionNames[tag];
        // Tags this side does not know come from a newer relay: skipped, as the protocol says.
        if (name) sections[name] = json;
      }
      frame = { type, requestId, deadlineMs, tmax, auctionType, test, id, currencies, impressions, sections };
      break;
    }
    case FrameType.BidResponseV2: {
      const currency = reader.currency('the bid currency');
      const bids = reader.list(() => ({
        impressionId: reader.text(1, 'an impression id'),
        priceMicros: reader.u32('a price'),
        creativeId: reader.text(1, 'a creative id'),
        w: reader.u16('a bid width'),
        h: reader.u16('a bid height'),
        advertiserDomains: reader.list(() => reader.text(1, 'an advertiser domain')),
        dealId: reader.text(1, 'a deal id'),
        nurl: reader.text(2, 'nurl'),
        burl: reader.text(2, 'burl'),
        markup: reader.text(4, 'markup'),
      }));
      frame = { type, requestId, currency, bids };
      break;
    }
    default:
      throw new ProtocolError(`unknown frame type ${type}`);
  }
  reader.end();
  return frame;
}

/**
 * Splits a byte stream into frames; feed it chunks as they arrive. Chunks are joined only once a
 * whole frame is there, so a peer that sends a byte at a time costs no more than one that does not.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.size += chunk.length;
    const frames: Frame[] = [];
    while (this.size >= 4) {
      if (this.chunks[0]!.length < 4) this.join();
      const length = this.chunks[0]!.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${length} bytes is over the ${MAX_FRAME_BYTES}-byte limit`);
      if (this.size < 4 + length) break;
      if (this.chunks[0]!.length < 4 + length) this.join();
      const head = this.chunks[0]!;
      frames.push(decodeBody(head.subarray(4, 4 + length)));
      if (head.length === 4 + length) this.chunks.shift();
      else this.chunks[0] = head.subarray(4 + length);
      this.size -= 4 + length;
    }
    return frames;
  }

  /** Bytes received that do not make a whole frame yet. */
  get buffered(): number {
    return this.size;
  }

  private join() {
    this.chunks = [Buffer.concat(this.chunks, this.size)];
  }
}
