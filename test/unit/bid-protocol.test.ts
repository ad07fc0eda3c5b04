import { describe, expect, it } from 'vitest';
import { BidRequest } from '#events/bids.ts';
import { sampleBidRequest } from '../../bench/openrtb-sample.ts';
import {
  type BidRequestV2Frame,
  type BidResponseV2Frame,
  decodeBody,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  MAX_FRAME_BYTES,
  ProtocolError,
} from '../../host-agent/bid-protocol.ts';
import { toSbrpRequest } from '../../host-agent/bid-relay.ts';

const roundTrip = (frame: Frame) => new FrameDecoder().push(encodeFrame(frame));

const fullRequest = (): BidRequestV2Frame => toSbrpRequest(BidRequest.parse(sampleBidRequest(['vm-a', 'vm-b'], 150)), 77, 140);

const fullResponse: BidResponseV2Frame = {
  type: FrameType.BidResponseV2,
  requestId: 77,
  currency: 'EUR',
  bids: [
    {
      impressionId: '1',
      priceMicros: 2_750_000,
      creativeId: 'cr-ünïcode',
      w: 300,
      h: 250,
      advertiserDomains: ['advertiser.example', 'brand.example'],
      dealId: 'deal-42',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: OpenRTB's win-price macro, which the exchange substitutes.
      nurl: 'https://win.example/1?p=${AUCTION_PRICE}',
      burl: '',
      markup: `<div>${'x'.repeat(70_000)}</div>`,
    },
    { impressionId: '2', priceMicros: 0, creativeId: '', w: 0, h: 0, advertiserDomains: [], dealId: '', nurl: '', burl: 'https://bill.example', markup: '' },
  ],
};

describe('SBRP codec', () => {
  it('round-trips every frame type of SBRP/1 and SBRP/2', () => {
    const frames: Frame[] = [
      { type: FrameType.BidRequest, requestId: 1, deadlineMs: 95, impressions: [{ id: '1', floorMicros: 500_000 }] },
      { type: FrameType.BidResponse, requestId: 1, bids: [{ impressionId: '1', priceMicros: 1, creativeId: 'c', markup: '<b/>' }] },
      { type: FrameType.NoBid, requestId: 0xffff_ffff },
      { type: FrameType.Hello, requestId: 0, version: 2 },
      fullRequest(),
      fullResponse,
    ];
    for (const frame of frames) expect(roundTrip(frame)).toEqual([frame]);
  });

  it('carries the whole OpenRTB request: formats and floors in binary, site, device, user, regs, source and the rest as JSON', () => {
    const [frame] = roundTrip(fullRequest()) as [BidRequestV2Frame];
    expect(frame).toMatchObject({
      id: 'b7e1c2a0-3f4d-4e8a-9c1b-2d5e6f7a8b9c',
      tmax: 150,
      deadlineMs: 140,
      auctionType: 1,
      test: false,
      currencies: ['USD', 'EUR'],
    });
    expect(frame.impressions[0]).toMatchObject({
      id: '1',
      floorMicros: 500_000,
      floorCurrency: 'USD',
      secure: true,
      banner: [
        { w: 300, h: 250 },
        { w: 728, h: 90 },
        { w: 320, h: 50 },
      ],
      native: false,
    });
    expect(JSON.parse(frame.impressions[0]!.json)).toMatchObject({ tagid: 'homepage-top', pmp: { deals: [{ id: 'deal-42' }] }, banner: { pos: 1 } });
    expect(frame.impressions[1]!.video).toEqual({
      minDuration: 5,
      maxDuration: 30,
      w: 640,
      h: 360,
      plcmt: 1,
      protocols: [2, 3, 7],
      mimes: ['video/mp4', 'video/webm'],
    });
    const sections = Object.fromEntries(Object.entries(frame.sections).map(([name, json]) => [name, JSON.parse(json)]));
    expect(Object.keys(sections).sort()).toEqual(['device', 'regs', 'request', 'site', 'source', 'user']);
    expect(sections.site.publisher.id).toBe('pub-77');
    expect(sections.device).toMatchObject({ ip: '203.0.113.7', geo: { country: 'USA' } });
    expect(sections.user.eids[0].source).toBe('id.example');
    expect(sections.regs).toMatchObject({ gdpr: 0, us_privacy: '1YNN', gpp_sid: [7] });
    // The relay's own field (ext.bidders) is not passed on; the rest of the request is.
    expect(sections.request).toEqual({ bcat: ['IAB25', 'IAB26'], badv: ['blocked.example'] });
  });

  it('splits a stream cut anywhere into the same frames', () => {
    const bytes = Buffer.concat([encodeFrame(fullRequest()), encodeFrame(fullResponse), encodeFrame({ type: FrameType.NoBid, requestId: 9 })]);
    for (const step of [1, 7, 4096]) {
      const decoder = new FrameDecoder();
      const frames: Frame[] = [];
      for (let offset = 0; offset < bytes.length; offset += step) frames.push(...decoder.push(bytes.subarray(offset, offset + step)));
      expect(frames.map((frame) => frame.type)).toEqual([FrameType.BidRequestV2, FrameType.BidResponseV2, FrameType.NoBid]);
      expect(decoder.buffered).toBe(0);
    }
  });

  it('refuses a truncated frame, trailing bytes and unknown types, saying where', () => {
    const encoded = encodeFrame(fullRequest());
    // Every truncation of the body is refused (the length prefix says more than there is).
    for (let cut = 1; cut < encoded.length - 4; cut += 13) {
      expect(() => decodeBody(encoded.subarray(4, 4 + cut))).toThrow(ProtocolError);
    }
    expect(() => decodeBody(encoded.subarray(4, 4 + 3))).toThrow(/frame ends early \(in the request id\)/);
    expect(() => decodeBody(Buffer.concat([encoded.subarray(4), Buffer.from([0])]))).toThrow(/trailing bytes/);
    expect(() => decodeBody(Buffer.from([99, 0, 0, 0, 1]))).toThrow(/unknown frame type 99/);
    expect(() => decodeBody(Buffer.from([FrameType.Hello, 0, 0, 0, 1, 2]))).toThrow(/request id 0/);
    const badCurrency = encodeFrame({ ...fullResponse, bids: [] });
    badCurrency.write('us$', 9, 'latin1');
    expect(() => decodeBody(badCurrency.subarray(4))).toThrow(/not a currency code/);
    // An incomplete frame is held, not refused, until the rest comes.
    expect(new FrameDecoder().push(encoded.subarray(0, 100))).toEqual([]);
  });

  it('refuses oversized frames, announced or built', () => {
    const header = Buffer.alloc(9);
    header.writeUInt32BE(MAX_FRAME_BYTES + 1);
    expect(() => new FrameDecoder().push(header)).toThrow(`frame of ${MAX_FRAME_BYTES + 1} bytes is over the ${MAX_FRAME_BYTES}-byte limit`);
    const huge = { ...fullResponse, bids: [{ ...fullResponse.bids[0]!, markup: 'x'.repeat(MAX_FRAME_BYTES) }] };
    expect(() => encodeFrame(huge)).toThrow(/over the 262144-byte limit/);
  });

  it('refuses values that do not fit their fields, naming them', () => {
    const request = fullRequest();
    expect(() => encodeFrame({ ...request, impressions: [{ ...request.impressions[0]!, id: 'é'.repeat(200) }] })).toThrow(
      'an impression id of 400 bytes does not fit a 1-byte length',
    );
    expect(() => encodeFrame({ ...request, currencies: ['usd'] })).toThrow(/3 capital letters/);
    expect(() => encodeFrame({ ...request, impressions: Array.from({ length: 256 }, () => request.impressions[0]!) })).toThrow('at most 255 impressions');
    expect(() => encodeFrame({ ...fullResponse, bids: [{ ...fullResponse.bids[0]!, w: 70_000 }] })).toThrow(/a bid width must be an integer from 0 to 65535/);
    expect(() => encodeFrame({ ...fullResponse, bids: [{ ...fullResponse.bids[0]!, priceMicros: -1 }] })).toThrow(/a price must be/);
  });

  it('skips sections of tags it does not know (a newer relay)', () => {
    const encoded = encodeFrame({ ...fullRequest(), sections: { site: '{}' } });
    // The section count, then tag 1 (site): rewrite the tag to 42.
    const tagAt = encoded.length - (4 + 2) - 1;
    expect(encoded[tagAt]).toBe(1);
    encoded[tagAt] = 42;
    const [frame] = new FrameDecoder().push(encoded) as [BidRequestV2Frame];
    expect(frame.sections).toEqual({});
  });
});

describe('OpenRTB 2.6 bid requests', () => {
  it('takes a whole request and keeps fields it does not check', () => {
    const parsed = BidRequest.parse(sampleBidRequest(['vm-a']));
    expect(parsed.imp[0]!.pmp).toEqual(sampleBidRequest(['vm-a']).imp[0]!.pmp);
    expect(parsed.badv).toEqual(['blocked.example']);
  });

  it('refuses what a bidder could not use, naming the field', () => {
    const issue = (change: (request: any) => void) => {
      const request: any = sampleBidRequest(['vm-a']);
      change(request);
      const result = BidRequest.safeParse(request);
      return result.success ? 'ok' : `${result.error.issues[0]!.path.join('.')}: ${result.error.issues[0]!.message}`;
    };
    expect(issue(() => {})).toBe('ok');
    expect(issue((request) => (request.app = { bundle: 'com.example' }))).toBe('app: a request has a site or an app, not both');
    expect(issue((request) => (request.cur = ['dollars']))).toMatch(/^cur\.0: must be an ISO 4217 currency code/);
    expect(issue((request) => (request.imp[0].banner.format[1].w = -1))).toMatch(/^imp\.0\.banner\.format\.1\.w: /);
    expect(issue((request) => (request.imp[1].video.mimes = []))).toMatch(/^imp\.1\.video\.mimes: /);
    expect(issue((request) => (request.imp[1].id = '1'))).toBe('imp: impression ids must be unique');
    expect(issue((request) => (request.device = 'a phone'))).toMatch(/^device: /);
    expect(issue((request) => (request.regs = 'yes'))).toBe('regs: must be a JSON object');
    expect(issue((request) => delete request.ext.bidders)).toMatch(/^ext\.bidders: /);
  });
});
