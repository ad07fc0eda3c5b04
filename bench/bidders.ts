// Bidders for bench:bids, in a process of their own: one connection per port given, each
// answering every bid request at once with one bid per impression. Prints BIDDERS_READY.
import net from 'node:net';
import { encodeFrame, FrameDecoder, FrameType } from '../host-agent/bid-protocol.ts';

const ports = process.argv.slice(2).map(Number);
let connected = 0;
for (const port of ports) {
  const socket = net.connect(port, '127.0.0.1', () => {
    if (++connected === ports.length) console.log(`BIDDERS_READY ${JSON.stringify({ ports })}`);
  });
  socket.setNoDelay(true);
  const decoder = new FrameDecoder();
  socket.on('data', (chunk) => {
    for (const frame of decoder.push(chunk)) {
      if (frame.type !== FrameType.BidRequest) continue;
      const bids = frame.impressions.map((impression) => ({
        impressionId: impression.id,
        priceMicros: 1_500_000,
        creativeId: `cr-${port}`,
        markup: '<div>ad</div>',
      }));
      socket.write(encodeFrame({ type: FrameType.BidResponse, requestId: frame.requestId, bids }));
    }
  });
}
