// Traffic between two VMs of the data-plane lab, run inside the VMs' network namespaces (plain
// JavaScript: `ip netns exec` starts it with bare node).
//   node traffic-probe.mjs echo PORT            UDP and TCP echo on PORT
//   node traffic-probe.mjs probe IP PORT MS     a UDP datagram every MS ms, and one TCP connection
//                                               sending a line every MS ms; each stdin line
//                                               "report" prints what was seen as one JSON line
//                                               ("reset" also starts a new window)
//   node traffic-probe.mjs probe-tcp IP PORT MS the TCP connection only (a guest whose echo
//                                               server speaks TCP alone)
import dgram from 'node:dgram';
import net from 'node:net';
import readline from 'node:readline';

const [mode, ...args] = process.argv.slice(2);

if (mode === 'echo') {
  const port = Number(args[0]);
  const udp = dgram.createSocket('udp4');
  udp.on('message', (message, from) => udp.send(message, from.port, from.address));
  udp.bind(port, '0.0.0.0');
  net
    .createServer((socket) => {
      socket.on('error', () => {});
      socket.pipe(socket);
    })
    .listen(port, '0.0.0.0', () => console.log('READY'));
} else if (mode === 'probe' || mode === 'probe-tcp') {
  const [target, port, intervalMs] = [args[0], Number(args[1]), Number(args[2])];
  /** Replies of one kind: how many, and the longest silence between two of them in this window. */
  const stream = () => ({ sent: 0, received: 0, last: 0, longestGapMs: 0, gapEndedAt: 0 });
  let udpStats = stream();
  let tcpStats = stream();
  const tcp = { connected: false, error: undefined, closed: false };
  const heard = (stats) => {
    const now = performance.now();
    if (stats.last && now - stats.last > stats.longestGapMs) {
      stats.longestGapMs = now - stats.last;
      stats.gapEndedAt = Date.now();
    }
    stats.last = now;
    stats.received++;
  };

  if (mode === 'probe') {
    const udp = dgram.createSocket('udp4');
    udp.on('message', () => heard(udpStats));
    udp.bind(0, () => {
      setInterval(() => {
        udpStats.sent++;
        udp.send('p', port, target);
      }, intervalMs);
    });
  }

  const socket = net.connect({ host: target, port }, () => {
    tcp.connected = true;
    console.log('READY');
  });
  socket.setNoDelay(true);
  socket.on('data', (chunk) => {
    for (const byte of chunk) if (byte === 10) heard(tcpStats);
  });
  socket.on('error', (error) => (tcp.error = error.code ?? error.message));
  socket.on('close', () => (tcp.closed = true));
  setInterval(() => {
    if (!tcp.connected || tcp.closed) return;
    tcpStats.sent++;
    socket.write('p\n');
  }, intervalMs);

  const view = ({ sent, received, longestGapMs, gapEndedAt }) => ({ sent, received, longestGapMs: Math.round(longestGapMs * 10) / 10, gapEndedAt });
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (line !== 'report' && line !== 'reset') return;
    console.log(JSON.stringify({ udp: view(udpStats), tcp: { ...view(tcpStats), ...tcp } }));
    if (line === 'reset') {
      const keepLast = (old) => ({ ...stream(), last: old.last });
      udpStats = keepLast(udpStats);
      tcpStats = keepLast(tcpStats);
    }
  });
} else {
  console.error('usage: traffic-probe.mjs echo PORT | probe IP PORT INTERVAL_MS | probe-tcp IP PORT INTERVAL_MS');
  process.exit(2);
}
