// Bidders for bench:bids, in a process of their own: one connection per port given, each
// speaking SBRP/2 (hello first) and answering every bid request at once with one bid per
// impression (price, creative, size, advertiser domain, a win URL and 130 bytes of markup).
// Prints BIDDERS_READY once the relay answered every hello.
import net from 'node:net';
import { encodeFrame, FrameDecoder, FrameType } from '../host-agent/bid-protocol.ts';

const ports = process.argv.slice(2).map(Number);
const markup = '<a href="https://advertiser.example/landing"><img src="https://cdn.advertiser.example/creative-300x250.png" width="300" height="250"></a>';
let ready = 0;
for (const port of ports) {
  const socket = net.connect(port, '127.0.0.1', () => socket.write(encodeFrame({ type: FrameType.Hello, requestId: 0, version: 2 })));
  socket.setNoDelay(true);
  const decoder = new FrameDecoder();
  socket.on('data', (chunk) => {
    for (const frame of decoder.push(chunk)) {
      if (frame.type === FrameType.Hello) {
        if (++ready === ports.length) console.log(`BIDDERS_READY ${JSON.stringify({ ports })}`);
        continue;
      }
      if (frame.type !== FrameType.BidRequestV2) continue;
      const bids = frame.impressions.map((impression) => ({
        impressionId: impression.id,
        priceMicros: 1_500_000,
        creativeId: `cr-${port}`,
        w: impression.banner?.[0]?.w ?? impression.video?.w ?? 0,
        h: impression.banner?.[0]?.h ?? impression.video?.h ?? 0,
        advertiserDomains: ['advertiser.example'],
        dealId: '',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: OpenRTB's win-price macro, which the exchange substitutes.
        nurl: 'https://win.advertiser.example/notice?price=${AUCTION_PRICE}',
        burl: '',
        markup,
      }));
      socket.write(encodeFrame({ type: FrameType.BidResponseV2, requestId: frame.requestId, currency: frame.currencies[0]!, bids }));
    }
  });
}
