import { z } from 'zod';
import { resourceId } from './identifiers.ts';

/**
 * A JSON object the relay passes on as it came: OpenRTB extends these freely, the relay reads none
 * of their fields, and the whole body is at most 64 KiB. Checking more here would cost every
 * auction time for what the bidder reads anyway.
 */
const jsonObject = z.custom<Record<string, unknown>>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), 'must be a JSON object');

const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 currency code (3 capital letters)');
const size = z.int().min(0).max(65_535);
const flag = z.union([z.literal(0), z.literal(1)]);

/** OpenRTB 2.6 Banner: its sizes (`format`, or `w`×`h`) go to bidders in binary. */
const Banner = z.looseObject({
  format: z
    .array(z.looseObject({ w: size, h: size }))
    .max(32)
    .optional(),
  w: size.optional(),
  h: size.optional(),
});

/** OpenRTB 2.6 Video: what goes to bidders in binary. */
const Video = z.looseObject({
  mimes: z.array(z.string().min(1).max(64)).min(1).max(16),
  minduration: z.int().min(0).max(65_535).default(0),
  maxduration: z.int().min(0).max(65_535).optional(),
  protocols: z.array(z.int().min(0).max(255)).max(32).optional(),
  w: size.optional(),
  h: size.optional(),
  plcmt: z.int().min(0).max(255).optional(),
});

export const Impression = z.looseObject({
  id: z.string().min(1).max(64),
  /** CPM floor, in `bidfloorcur`. */
  bidfloor: z.number().min(0).max(4000).default(0),
  bidfloorcur: currency.default('USD'),
  secure: flag.optional(),
  instl: flag.optional(),
  banner: Banner.optional(),
  video: Video.optional(),
  native: jsonObject.optional(),
  audio: jsonObject.optional(),
});
export type Impression = z.infer<typeof Impression>;

/**
 * An OpenRTB 2.6 BidRequest as the relay takes it: `id`, `imp` (banner, video, native, audio;
 * floors with their currency), `site` or `app`, `device`, `user`, `regs`, `source`, `cur`, `at`,
 * `test`, `tmax` (ms, from when the relay receives the request) and any other field, passed to
 * SBRP/2 bidders as sent; in `ext.bidders` the VMs on this host whose bidders are asked. Fields
 * the relay reads or encodes in binary are checked; `site`, `app`, `device`, `user`, `regs` and
 * `source` must be JSON objects; the rest is carried verbatim.
 */
export const BidRequest = z
  .looseObject({
    id: z.string().min(1).max(128),
    imp: z.array(Impression).min(1).max(255),
    site: jsonObject.optional(),
    app: jsonObject.optional(),
    device: jsonObject.optional(),
    user: jsonObject.optional(),
    regs: jsonObject.optional(),
    source: jsonObject.optional(),
    at: z.int().min(1).max(255).default(2),
    test: flag.default(0),
    tmax: z.int().min(10).max(5000),
    cur: z.array(currency).min(1).max(16).default(['USD']),
    ext: z.looseObject({ bidders: z.array(resourceId).min(1).max(64) }),
  })
  .refine((request) => !(request.site && request.app), { message: 'a request has a site or an app, not both', path: ['app'] })
  .refine((request) => new Set(request.imp.map((imp) => imp.id)).size === request.imp.length, { message: 'impression ids must be unique', path: ['imp'] });
export type BidRequest = z.infer<typeof BidRequest>;

/** How each named bidder fared, in the response's `ext.bidders`. */
export type BidderOutcome = 'bid' | 'no-bid' | 'timeout' | 'not-connected' | 'invalid';

/** An OpenRTB 2.6 Bid as the relay answers it. */
export interface Bid {
  id: string;
  impid: string;
  price: number;
  adm: string;
  crid: string;
  w?: number;
  h?: number;
  adomain?: string[];
  dealid?: string;
  nurl?: string;
  burl?: string;
}

export interface BidResponse {
  id: string;
  /** The currency of every bid (OpenRTB `cur`). */
  cur: string;
  seatbid: { seat: string; bid: Bid[] }[];
  ext: { bidders: Record<string, BidderOutcome>; elapsedMs: number };
}
