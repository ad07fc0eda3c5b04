import { agentStatus } from '#host-agent/agent-control-client.ts';
/**
 * Where the console looks: the API, with the bearer token of whoever the console shows the system
 * to, and each host agent's status. An agent answers anyone on its machine with every route it
 * holds, whoever's network it is of: what a tenant may see of that is filtered here.
 */
export interface ConsoleSources {
  apiUrl: string;
  agents: readonly { hostId: string; controlSocket: string }[];
}

/** Who looks, as the token the console holds for the view says; the API checks that token on every call made with it. */
export interface Viewer {
  kind: 'tenant' | 'operator';
  id: string;
}

type Route = { networkId: string; ip: string; endpoint: string; vmId: string; version: number };

export interface Topology {
  viewer: Viewer;
  /** The hosts the viewer has something on (an operator: all). A tenant's `vmCount` counts its own VMs only, and it sees no capacity. */
  hosts: { hostId: string; address?: string; capacity?: number; vmCount: number }[];
  /** A tenant's own networks; for an operator, every network a VM or a route names (the API tells operators no network names or CIDRs). */
  networks: { networkId: string; name?: string; cidr?: string; tenantId?: string }[];
  vms: { vmId: string; name: string; ip: string; hostId: string; networkId: string; tenantId: string; state: string; endpoint: string }[];
  /** What each agent holds: for every VM of its networks (a tenant: of the tenant's networks), the tunnel endpoint and the version it came with. */
  agents: { hostId: string; reachable: boolean; routes: Route[] }[];
}

/** The subject of an API token, read without checking it: the console only picks what to ask the API with it, and the API checks it. */
export function viewerOf(token: string): Viewer {
  let sub: unknown;
  try {
    sub = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')).sub;
  } catch {
    // said below
  }
  const match = typeof sub === 'string' ? /^(tenant|operator):(.+)$/.exec(sub) : null;
  if (!match) throw new Error('a console view needs a tenant or an operator API token');
  return { kind: match[1] as Viewer['kind'], id: match[2]! };
}

async function apiGet(sources: ConsoleSources, token: string, path: string): Promise<any> {
  const response = await fetch(`${sources.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Every item of a paged list route. */
async function listAll(sources: ConsoleSources, token: string, path: string, key: string): Promise<any[]> {
  const items: any[] = [];
  let nextToken: string | undefined;
  do {
    const page = await apiGet(sources, token, `${path}${path.includes('?') ? '&' : '?'}limit=100${nextToken ? `&nextToken=${encodeURIComponent(nextToken)}` : ''}`);
    items.push(...page[key]);
    nextToken = page.nextToken;
  } while (nextToken);
  return items;
}

const byId = <T>(key: keyof T) => (a: T, b: T) => String(a[key]).localeCompare(String(b[key]), undefined, { numeric: true });

function agentRoutes(sources: ConsoleSources): Promise<Topology['agents']> {
  return Promise.all(
    sources.agents.map(async ({ hostId, controlSocket }) => {
      try {
        const { routes } = (await agentStatus(controlSocket, 2_000)) as { routes: Topology['agents'][number]['routes'] };
        return { hostId, reachable: true, routes };
      } catch {
        return { hostId, reachable: false, routes: [] };
      }
    }),
  );
}

const vmOf = ({ vmId, name, ip, hostId, networkId, tenantId, state, endpoint }: any): Topology['vms'][number] => ({ vmId, name, ip, hostId, networkId, tenantId, state, endpoint: endpoint.address });

/** The topology as the holder of `token` may see it: a tenant only what is its own, an operator everything. */
export async function gatherTopology(sources: ConsoleSources, token: string): Promise<Topology> {
  const viewer = viewerOf(token);
  return viewer.kind === 'operator' ? operatorView(sources, token, viewer) : tenantView(sources, token, viewer);
}

async function tenantView(sources: ConsoleSources, token: string, viewer: Viewer): Promise<Topology> {
  const [networks, vms, agents] = await Promise.all([listAll(sources, token, '/networks', 'networks'), listAll(sources, token, '/vms', 'vms'), agentRoutes(sources)]);
  const own = new Set(networks.map((network) => network.networkId as string));
  // Another tenant's routes, VMs and share of a host are none of this tenant's business.
  const visible = agents.map((agent) => ({ ...agent, routes: agent.routes.filter((route) => own.has(route.networkId)) }));
  const hosts = new Map<string, Topology['hosts'][number]>();
  for (const vm of vms) {
    const host = hosts.get(vm.hostId) ?? { hostId: vm.hostId, address: vm.endpoint.address, vmCount: 0 };
    host.vmCount++;
    hosts.set(vm.hostId, host);
  }
  // A host the tenant's VMs just left, whose agent still holds the tenant's routes for a moment.
  for (const agent of visible) if (agent.routes.length > 0 && !hosts.has(agent.hostId)) hosts.set(agent.hostId, { hostId: agent.hostId, vmCount: 0 });
  return {
    viewer,
    hosts: [...hosts.values()].sort(byId('hostId')),
    networks: networks.map(({ networkId, name, cidr }) => ({ networkId, name, cidr })).sort(byId('name')),
    vms: vms.map(vmOf).sort(byId('name')),
    agents: visible.filter((agent) => hosts.has(agent.hostId)),
  };
}

async function operatorView(sources: ConsoleSources, token: string, viewer: Viewer): Promise<Topology> {
  const [hosts, agents] = await Promise.all([apiGet(sources, token, '/hosts').then(({ hosts }) => hosts as any[]), agentRoutes(sources)]);
  const vms = (await Promise.all(hosts.map((host) => listAll(sources, token, `/vms?hostId=${encodeURIComponent(host.hostId)}`, 'vms')))).flat().map(vmOf);
  const networks = new Map<string, Topology['networks'][number]>();
  for (const vm of vms) networks.set(vm.networkId, { networkId: vm.networkId, tenantId: vm.tenantId });
  for (const route of agents.flatMap((agent) => agent.routes)) if (!networks.has(route.networkId)) networks.set(route.networkId, { networkId: route.networkId });
  return {
    viewer,
    hosts: hosts.map(({ hostId, address, capacity, vmCount }) => ({ hostId, address, capacity, vmCount })).sort(byId('hostId')),
    networks: [...networks.values()].sort(byId('networkId')),
    vms: vms.sort(byId('name')),
    agents,
  };
}
