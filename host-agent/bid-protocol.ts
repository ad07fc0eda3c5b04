/**
 * The relay ↔ bidder protocol (SBRP, "Stratoplane bid relay protocol"), over one TCP connection
 * per bidder VM, many requests in flight on it at once. Every frame:
 *
 *   u32 length     bytes after this field
 *   u8  type       1 = bid request (relay → bidder), 2 = bid response, 3 = no bid (bidder → relay)
 *   u32 requestId  chosen by the relay; a response carries its request's
 *   …   payload    by type, below
 *
 * Bid request: u16 deadline (ms the bidder has left), u8 impression count, then per impression
 * u8 id length, id (UTF-8), u32 floor (price in millionths of a currency unit, CPM).
 * Bid response: u8 bid count, then per bid u8 impression id length, id, u32 price (millionths),
 * u8 creative id length, creative id, u16 markup length, markup (UTF-8).
 * No bid: no payload.
 *
 * All integers are big-endian. Prices are integers so no float crosses the wire; JSON prices are
 * converted at the relay. Binary and length-prefixed so a bidder parses a request without a JSON
 * parser, and the relay routes responses by a fixed-offset id.
 */

export const FrameType = { BidRequest: 1, BidResponse: 2, NoBid: 3 } as const;

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

export type Frame = BidRequestFrame | BidResponseFrame | NoBidFrame;

export class ProtocolError extends Error {}

/** Frames above this are refused: nothing legitimate comes near it. */
export const MAX_FRAME_BYTES = 256 * 1024;

class Writer {
  private readonly parts: Buffer[] = [];
  u8(value: number) {
    this.parts.push(Buffer.from([value]));
  }
  u16(value: number) {
    const buffer = Buffer.alloc(2);
    buffer.writeUInt16BE(value);
    this.parts.push(buffer);
  }
  u32(value: number) {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(value);
    this.parts.push(buffer);
  }
  text(value: string, lengthBytes: 1 | 2) {
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length >= 2 ** (8 * lengthBytes)) throw new ProtocolError(`text of ${bytes.length} bytes does not fit a ${lengthBytes}-byte length`);
    if (lengthBytes === 1) this.u8(bytes.length);
    else this.u16(bytes.length);
    this.parts.push(bytes);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

class Reader {
  private offset = 0;
  constructor(private readonly buffer: Buffer) {}
  private need(bytes: number) {
    if (this.offset + bytes > this.buffer.length) throw new ProtocolError('frame ends early');
  }
  u8() {
    this.need(1);
    return this.buffer.readUInt8(this.offset++);
  }
  u16() {
    this.need(2);
    const value = this.buffer.readUInt16BE(this.offset);
    this.offset += 2;
    return value;
  }
  u32() {
    this.need(4);
    const value = this.buffer.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }
  text(lengthBytes: 1 | 2) {
    const length = lengthBytes === 1 ? this.u8() : this.u16();
    this.need(length);
    const value = this.buffer.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }
  end() {
    if (this.offset !== this.buffer.length) throw new ProtocolError('frame has trailing bytes');
  }
}

export function encodeFrame(frame: Frame): Buffer {
  const body = new Writer();
  body.u8(frame.type);
  body.u32(frame.requestId);
  if (frame.type === FrameType.BidRequest) {
    body.u16(Math.max(0, Math.min(65_535, Math.round(frame.deadlineMs))));
    if (frame.impressions.length > 255) throw new ProtocolError('at most 255 impressions');
    body.u8(frame.impressions.length);
    for (const impression of frame.impressions) {
      body.text(impression.id, 1);
      body.u32(impression.floorMicros);
    }
  } else if (frame.type === FrameType.BidResponse) {
    if (frame.bids.length > 255) throw new ProtocolError('at most 255 bids');
    body.u8(frame.bids.length);
    for (const bid of frame.bids) {
      body.text(bid.impressionId, 1);
      body.u32(bid.priceMicros);
      body.text(bid.creativeId, 1);
      body.text(bid.markup, 2);
    }
  }
  const payload = body.done();
  const length = Buffer.alloc(4);
  length.writeUInt32BE(payload.length);
  return Buffer.concat([length, payload]);
}

function decodeBody(body: Buffer): Frame {
  const reader = new Reader(body);
  const type = reader.u8();
  const requestId = reader.u32();
  let frame: Frame;
  switch (type) {
    case FrameType.BidRequest: {
      const deadlineMs = reader.u16();
      const impressions = Array.from({ length: reader.u8() }, () => ({ id: reader.text(1), floorMicros: reader.u32() }));
      frame = { type, requestId, deadlineMs, impressions };
      break;
    }
    case FrameType.BidResponse: {
      const bids = Array.from({ length: reader.u8() }, () => ({
        impressionId: reader.text(1),
        priceMicros: reader.u32(),
        creativeId: reader.text(1),
        markup: reader.text(2),
      }));
      frame = { type, requestId, bids };
      break;
    }
    case FrameType.NoBid:
      frame = { type, requestId };
      break;
    default:
      throw new ProtocolError(`unknown frame type ${type}`);
  }
  reader.end();
  return frame;
}

/** Splits a byte stream into frames; feed it chunks as they arrive. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    while (this.pending.length >= 4) {
      const length = this.pending.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${length} bytes is over the ${MAX_FRAME_BYTES}-byte limit`);
      if (this.pending.length < 4 + length) break;
      frames.push(decodeBody(this.pending.subarray(4, 4 + length)));
      this.pending = this.pending.subarray(4 + length);
    }
    return frames;
  }
}
