import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { gatherTopology, type ConsoleSources } from './topology.ts';

export interface ConsoleOptions extends ConsoleSources {
  /** 0 picks a free port. */
  port: number;
  /** How often the topology is gathered again while someone watches. */
  pollMs?: number;
  log?: (line: string) => void;
}

export interface RunningConsole {
  url: string;
  close(): Promise<void>;
}

const page = readFileSync(fileURLToPath(new URL('./index.html', import.meta.url)), 'utf8');

/**
 * The local web console: one page, and the topology it draws, gathered from the API (hosts,
 * networks, VMs) and from every host agent (the tunnel endpoints it holds). Watchers get it as
 * server-sent events, a new one whenever it changes, so a migration shows as it converges.
 */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const pollMs = options.pollMs ?? 250;
  const watchers = new Set<http.ServerResponse>();
  let latest: string | undefined;
  let timer: NodeJS.Timeout | undefined;

  const refresh = async () => {
    try {
      const json = JSON.stringify(await gatherTopology(options));
      // Only a change is news.
      if (json === latest) return;
      latest = json;
      for (const watcher of watchers) watcher.write(`data: ${json}\n\n`);
    } catch (error) {
      options.log?.(`[console] gathering the topology failed: ${(error as Error).message}`);
    }
  };
  // One gathering loop however many watch, and none while nobody does.
  let polling = false;
  const poll = async () => {
    polling = true;
    await refresh();
    if (watchers.size > 0) timer = setTimeout(poll, pollMs);
    else polling = false;
  };

  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://console');
    if (request.method !== 'GET') return void response.writeHead(405, { allow: 'GET' }).end();
    if (url.pathname === '/') return void response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
    if (url.pathname === '/events') {
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      watchers.add(response);
      if (latest) response.write(`data: ${latest}\n\n`);
      request.on('close', () => watchers.delete(response));
      if (!polling) void poll();
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: async () => {
      if (timer) clearTimeout(timer);
      for (const watcher of watchers) watcher.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
