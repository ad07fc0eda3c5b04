import { z } from 'zod';
import { resourceId } from './identifiers.ts';

/** A JSON object the relay passes on as it came (OpenRTB objects extend freely); at most this much of it. */
const MAX_OBJECT_KEYS = 64;
const openObject = <T extends z.ZodRawShape>(shape: T) =>
  z.looseObject(shape).refine((value) => Object.keys(value).length <= MAX_OBJECT_KEYS, `at most ${MAX_OBJECT_KEYS} fields`);

const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 currency code (3 capital letters)');
const size = z.int().min(0).max(65_535);
const shortText = z.string().max(255);

/** OpenRTB 2.6 Format: one banner size. */
const Format = z.looseObject({ w: size, h: size });

const Banner = openObject({
  format: z.array(Format).max(32).optional(),
  w: size.optional(),
  h: size.optional(),
});

const Video = openObject({
  mimes: z.array(z.string().min(1).max(64)).min(1).max(16),
  minduration: z.int().min(0).max(65_535).default(0),
  maxduration: z.int().min(0).max(65_535).optional(),
  protocols: z.array(z.int().min(0).max(255)).max(32).optional(),
  w: size.optional(),
  h: size.optional(),
  plcmt: z.int().min(0).max(255).optional(),
});

export const Impression = openObject({
  id: z.string().min(1).max(64),
  /** CPM floor, in `bidfloorcur`. */
  bidfloor: z.number().min(0).max(4000).default(0),
  bidfloorcur: currency.default('USD'),
  secure: z.union([z.literal(0), z.literal(1)]).optional(),
  instl: z.union([z.literal(0), z.literal(1)]).optional(),
  tagid: shortText.optional(),
  banner: Banner.optional(),
  video: Video.optional(),
  native: openObject({ request: z.string().max(32_768) }).optional(),
  audio: openObject({ mimes: z.array(z.string().max(64)).min(1).max(16) }).optional(),
});
export type Impression = z.infer<typeof Impression>;

const Publisher = openObject({ id: shortText.optional(), name: shortText.optional(), domain: shortText.optional() });
const Geo = openObject({ lat: z.number().optional(), lon: z.number().optional(), country: shortText.optional(), region: shortText.optional() });

/** OpenRTB 2.6 Site and App: what is shown where. A request has one of them, never both. */
const Site = openObject({ id: shortText.optional(), domain: shortText.optional(), page: z.string().max(4096).optional(), publisher: Publisher.optional() });
const App = openObject({ id: shortText.optional(), bundle: shortText.optional(), storeurl: z.string().max(4096).optional(), publisher: Publisher.optional() });
const Device = openObject({
  ua: z.string().max(1024).optional(),
  ip: shortText.optional(),
  ipv6: shortText.optional(),
  devicetype: z.int().optional(),
  os: shortText.optional(),
  w: size.optional(),
  h: size.optional(),
  geo: Geo.optional(),
});
const User = openObject({ id: shortText.optional(), buyeruid: shortText.optional(), consent: z.string().max(16_384).optional(), geo: Geo.optional() });
const Regs = openObject({
  coppa: z.union([z.literal(0), z.literal(1)]).optional(),
  gdpr: z.union([z.literal(0), z.literal(1)]).optional(),
  us_privacy: shortText.optional(),
  gpp: z.string().max(16_384).optional(),
  gpp_sid: z.array(z.int()).max(64).optional(),
});

/**
 * An OpenRTB 2.6 BidRequest as the relay takes it: `id`, `imp` (banner, video, native, audio;
 * floors with their currency), `site` or `app`, `device`, `user`, `regs`, `source`, `cur`, `at`,
 * `test`, `tmax` (ms, from when the relay receives the request) and any other field, passed to
 * SBRP/2 bidders as sent; in `ext.bidders` the VMs on this host whose bidders are asked. Fields
 * the relay reads are checked; the rest must be JSON and is carried verbatim.
 */
export const BidRequest = z
  .looseObject({
    id: z.string().min(1).max(128),
    imp: z.array(Impression).min(1).max(255),
    site: Site.optional(),
    app: App.optional(),
    device: Device.optional(),
    user: User.optional(),
    regs: Regs.optional(),
    source: openObject({}).optional(),
    at: z.int().min(1).max(255).default(2),
    test: z.union([z.literal(0), z.literal(1)]).default(0),
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
