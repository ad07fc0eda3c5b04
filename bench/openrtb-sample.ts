/**
 * A whole OpenRTB 2.6 bid request as an exchange sends one (site, device, user with consent and
 * extended ids, regs, supply chain, a banner impression with three formats and a video one), for
 * bench:bids and the bid relay's tests. `bidders` goes in `ext.bidders`.
 */
export function sampleBidRequest(bidders: string[], tmax = 200) {
  return {
    id: 'b7e1c2a0-3f4d-4e8a-9c1b-2d5e6f7a8b9c',
    at: 1,
    tmax,
    cur: ['USD', 'EUR'],
    imp: [
      {
        id: '1',
        tagid: 'homepage-top',
        secure: 1,
        bidfloor: 0.5,
        bidfloorcur: 'USD',
        banner: {
          format: [
            { w: 300, h: 250 },
            { w: 728, h: 90 },
            { w: 320, h: 50 },
          ],
          pos: 1,
          api: [3, 5],
        },
        pmp: { private_auction: 0, deals: [{ id: 'deal-42', bidfloor: 2.5, bidfloorcur: 'USD', at: 1 }] },
      },
      {
        id: '2',
        tagid: 'article-video',
        secure: 1,
        bidfloor: 0,
        bidfloorcur: 'USD',
        video: { mimes: ['video/mp4', 'video/webm'], minduration: 5, maxduration: 30, protocols: [2, 3, 7], w: 640, h: 360, plcmt: 1, skip: 1, linearity: 1 },
      },
    ],
    site: {
      id: 'site-1029',
      name: 'Example News',
      domain: 'news.example',
      cat: ['IAB12'],
      page: 'https://news.example/world/2026/12/04/story.html',
      ref: 'https://search.example/?q=story',
      publisher: { id: 'pub-77', name: 'Example Media', domain: 'media.example' },
      content: { language: 'en', keywords: 'world,politics' },
    },
    device: {
      ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15',
      ip: '203.0.113.7',
      devicetype: 2,
      make: 'Apple',
      model: 'Macintosh',
      os: 'macOS',
      osv: '14.2',
      language: 'en',
      js: 1,
      dnt: 0,
      connectiontype: 2,
      w: 1512,
      h: 982,
      geo: { country: 'USA', region: 'CA', city: 'San Francisco', zip: '94103', type: 2, utcoffset: -480 },
    },
    user: {
      id: 'u-5b1e0d7c9a',
      buyeruid: 'buyer-8f3e2a',
      yob: 1984,
      consent: 'CP1234567890abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ',
      eids: [{ source: 'id.example', uids: [{ id: 'eid-1a2b3c4d5e6f', atype: 1 }] }],
    },
    regs: { coppa: 0, gdpr: 0, us_privacy: '1YNN', gpp: 'DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA', gpp_sid: [7] },
    source: { fd: 1, tid: 'tid-0f9e8d7c', schain: { complete: 1, ver: '1.0', nodes: [{ asi: 'exchange.example', sid: 'pub-77', hp: 1 }] } },
    bcat: ['IAB25', 'IAB26'],
    badv: ['blocked.example'],
    ext: { bidders },
  };
}
