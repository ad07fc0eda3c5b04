import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { gatherTopology, viewerOf, type ConsoleSources } from './topology.ts';

export interface ConsoleOptions extends ConsoleSources {
  /**
   * Whom the console shows the system to: an API bearer token per view name, picked with
   * `/?view=NAME` (the first is the default). A tenant's token shows that tenant's VMs, networks
   * and routes only; an operator's, everything.
   */
  views: Readonly<Record<string, string>>;
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

/** One view's watchers and its gathering loop: one loop however many watch it, and none while nobody does. */
interface View {
  name: string;
  token: string;
  watchers: Set<http.ServerResponse>;
  latest?: string;
  timer?: NodeJS.Timeout;
  polling: boolean;
}

/**
 * The local web console: one page, and the topology it draws, gathered from the API (hosts,
 * networks, VMs) and from every host agent (the tunnel endpoints it holds), as the viewer may see
 * it. Watchers get it as server-sent events, a new one whenever it changes, so a migration shows
 * as it converges.
 */
export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const pollMs = options.pollMs ?? 250;
  const names = Object.keys(options.views);
  if (names.length === 0) throw new Error('the console needs at least one view (a name and an API token)');
  const views = new Map<string, View>();
  for (const name of names) {
    const token = options.views[name]!;
    viewerOf(token); // a token that is neither a tenant's nor an operator's is refused at start
    views.set(name, { name, token, watchers: new Set(), polling: false });
  }

  const refresh = async (view: View) => {
    try {
      const json = JSON.stringify({ view: view.name, views: names, ...(await gatherTopology(options, view.token)) });
      // Only a change is news.
      if (json === view.latest) return;
      view.latest = json;
      for (const watcher of view.watchers) watcher.write(`data: ${json}\n\n`);
    } catch (error) {
      options.log?.(`[console] gathering the topology for view ${view.name} failed: ${(error as Error).message}`);
    }
  };
  const poll = async (view: View) => {
    view.polling = true;
    await refresh(view);
    if (view.watchers.size > 0) view.timer = setTimeout(() => void poll(view), pollMs);
    else view.polling = false;
  };

  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://console');
    if (request.method !== 'GET') return void response.writeHead(405, { allow: 'GET' }).end();
    const view = views.get(url.searchParams.get('view') ?? names[0]!);
    if (url.pathname === '/' || url.pathname === '/events') {
      if (!view) return void response.writeHead(404, { 'content-type': 'text/plain' }).end(`no such view; the views are ${names.join(', ')}`);
    }
    if (url.pathname === '/') return void response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
    if (url.pathname === '/events' && view) {
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      view.watchers.add(response);
      if (view.latest) response.write(`data: ${view.latest}\n\n`);
      request.on('close', () => view.watchers.delete(response));
      if (!view.polling) void poll(view);
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
      for (const view of views.values()) {
        if (view.timer) clearTimeout(view.timer);
        for (const watcher of view.watchers) watcher.end();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
