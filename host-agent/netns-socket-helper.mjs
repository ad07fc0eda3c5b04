// Runs inside a host's network namespace (started by `ip netns exec`, see netns-sockets.ts) and
// opens sockets there (connections and listeners) for the agent, which lives in another namespace: a socket belongs to the
// namespace it was made in, whichever process holds it. Each socket is handed over on the IPC
// channel and this process keeps no copy. Plain JavaScript: it starts often and must start fast.
import net from 'node:net';

process.on('message', (request) => {
  if (request?.kind === 'listen') return listen(request);
  if (request?.kind !== 'connect') return;
  const { id, address, port } = request;
  const socket = net.connect({ host: address, port });
  const fail = (error) => process.send({ id, error: error.message });
  socket.once('error', fail);
  socket.once('connect', () => {
    socket.off('error', fail);
    socket.pause();
    process.send({ id }, socket);
  });
  socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from ${address}:${port} within 10 s`)));
});
function listen({ id, address, port }) {
  const server = net.createServer();
  server.once('error', (error) => process.send({ id, error: error.message }));
  server.listen({ host: address, port }, () => {
    // Handed over, then closed here: the agent holds the only copy of the listening socket.
    process.send({ id }, server, () => server.close());
  });
}

process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
