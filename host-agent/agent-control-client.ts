import http from 'node:http';
import type { HostAgent } from './agent.ts';

/** The agent's `/status` as JSON. */
export type AgentStatus = ReturnType<HostAgent['statusReport']>;

/** Asks a host agent over its control socket (see HostAgent.serveControl); the host's operators' way in. */
export function agentRequest(
  socketPath: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 5_000,
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      { socketPath, method, path, headers: { host: 'agent', 'content-type': 'application/json' }, timeout: timeoutMs },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          try {
            resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) });
          } catch {
            reject(new Error(`agent at ${socketPath} answered ${response.statusCode} with no JSON`));
          }
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error(`agent at ${socketPath} did not answer within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** The agent's `/status`. */
export async function agentStatus(socketPath: string, timeoutMs?: number): Promise<AgentStatus> {
  const { status, body } = await agentRequest(socketPath, 'GET', '/status', undefined, timeoutMs);
  if (status !== 200) throw new Error(`agent at ${socketPath}: /status answered ${status}`);
  return body as AgentStatus;
}
