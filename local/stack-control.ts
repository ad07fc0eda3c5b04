import { chmodSync, rmSync } from 'node:fs';
import http from 'node:http';
import { agentRequest } from '#host-agent/agent-control-client.ts';
import { type LocalStack, UnknownAgentError } from './local-stack.ts';

/**
 * `npm start`'s control socket (a unix socket only its owner can open): `GET /agents` answers each
 * agent's supervisor state; `POST /agents/<hostId>/restart` stops that agent if it runs and starts
 * it again as at start, answering once it is ready (what `npm run agent` asks).
 */
export async function serveStackControl(socket: string, stack: Pick<LocalStack, 'restartAgent' | 'agentStates'>): Promise<{ close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const reply = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body, null, 2));
    };
    const path = new URL(request.url ?? '/', 'http://stack').pathname;
    if (request.method === 'GET' && path === '/agents') return reply(200, { agents: stack.agentStates() });
    const restart = request.method === 'POST' ? /^\/agents\/([A-Za-z0-9._-]{1,64})\/restart$/.exec(path) : null;
    if (!restart) return reply(404, { message: 'try GET /agents or POST /agents/<hostId>/restart' });
    stack.restartAgent(restart[1]!).then(
      (agent) => reply(200, agent),
      (error: Error) => reply(error instanceof UnknownAgentError ? 404 : 500, { message: error.message }),
    );
  });
  // A socket left by a stack that died goes; one that answers belongs to a running stack.
  if (await stackAnswers(socket)) throw new Error(`another npm start answers on ${socket}: stop it first`);
  rmSync(socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, resolve);
  });
  chmodSync(socket, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function stackAnswers(socket: string): Promise<boolean> {
  try {
    await agentRequest(socket, 'GET', '/agents', undefined, 2_000);
    return true;
  } catch {
    return false;
  }
}
