import { z } from 'zod';
import { resourceId } from './identifiers.ts';

/**
 * The subset of an OpenRTB 2.x BidRequest the relay takes: impressions with floors, the deadline
 * `tmax` (ms, from when the relay receives the request), and in `ext.bidders` the VMs on this host
 * whose bidders should be asked.
 */
export const BidRequest = z.object({
  id: z.string().min(1).max(128),
  imp: z
    .array(
      z.object({
        id: z.string().min(1).max(64),
        /** CPM floor, in the currency's units. */
        bidfloor: z.number().min(0).max(4000).default(0),
      }),
    )
    .min(1)
    .max(255),
  tmax: z.int().min(10).max(5000),
  ext: z.object({ bidders: z.array(resourceId).min(1).max(64) }),
});
export type BidRequest = z.infer<typeof BidRequest>;

/** How each named bidder fared, in the response's `ext.bidders`. */
export type BidderOutcome = 'bid' | 'no-bid' | 'timeout' | 'not-connected' | 'invalid';

export interface BidResponse {
  id: string;
  seatbid: { seat: string; bid: { id: string; impid: string; price: number; adm: string; crid: string }[] }[];
  ext: { bidders: Record<string, BidderOutcome>; elapsedMs: number };
}
