import { type ApiClient, type ApiResponse, createApiClient } from '#events/api-client.ts';
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
  hosts: { hostId: string; address?: string; capacity?: number; vmCount: number; health?: string; lastSeen?: string }[];
  /** A tenant's own networks; for an operator, every network a VM or a route names (the API tells operators no network names or CIDRs). */
  networks: { networkId: string; name?: string; cidr?: string; tenantId?: string }[];
  vms: {
    vmId: string;
    name: string;
    ip: string;
    hostId: string;
    networkId: string;
    tenantId: string;
    state: string;
    endpoint: string;
    /** While it moves live: its phase and where it goes. */
    migration?: { phase: string; targetHostId: string };
  }[];
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

type ApiVm = ApiResponse<'getVm'>;

/** Every page of a list route, its items in order. */
async function listAll<Item>(page: (nextToken: string | undefined) => Promise<{ items: Item[]; nextToken?: string | undefined }>): Promise<Item[]> {
  const items: Item[] = [];
  let nextToken: string | undefined;
  do {
    const answer = await page(nextToken);
    items.push(...answer.items);
    nextToken = answer.nextToken;
  } while (nextToken);
  return items;
}

const allNetworks = (api: ApiClient) =>
  listAll((nextToken) => api.listNetworks({ query: { limit: 100, nextToken } }).then(({ networks, nextToken }) => ({ items: networks, nextToken })));
const allVms = (api: ApiClient, hostId?: string) =>
  listAll((nextToken) => api.listVms({ query: { limit: 100, nextToken, hostId } }).then(({ vms, nextToken }) => ({ items: vms, nextToken })));

const byId =
  <T>(key: keyof T) =>
  (a: T, b: T) =>
    String(a[key]).localeCompare(String(b[key]), undefined, { numeric: true });

function agentRoutes(sources: ConsoleSources): Promise<Topology['agents']> {
  return Promise.all(
    sources.agents.map(async ({ hostId, controlSocket }) => {
      try {
        const { routes } = await agentStatus(controlSocket, 2_000);
        return { hostId, reachable: true, routes };
      } catch {
        return { hostId, reachable: false, routes: [] };
      }
    }),
  );
}

const vmOf = ({ vmId, name, ip, hostId, networkId, tenantId, state, endpoint, migration }: ApiVm): Topology['vms'][number] => ({
  vmId,
  name,
  ip,
  hostId,
  networkId,
  tenantId,
  state,
  endpoint: endpoint.address,
  ...(migration ? { migration: { phase: migration.phase, targetHostId: migration.targetHostId } } : {}),
});

/** The topology as the holder of `token` may see it: a tenant only what is its own, an operator everything. */
export async function gatherTopology(sources: ConsoleSources, token: string): Promise<Topology> {
  const viewer = viewerOf(token);
  const api = createApiClient({ baseUrl: sources.apiUrl, token, timeoutMs: 5_000 });
  return viewer.kind === 'operator' ? operatorView(sources, api, viewer) : tenantView(sources, api, viewer);
}

async function tenantView(sources: ConsoleSources, api: ApiClient, viewer: Viewer): Promise<Topology> {
  const [networks, vms, agents] = await Promise.all([allNetworks(api), allVms(api), agentRoutes(sources)]);
  const own = new Set(networks.map((network) => network.networkId));
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

async function operatorView(sources: ConsoleSources, api: ApiClient, viewer: Viewer): Promise<Topology> {
  const [{ hosts }, agents] = await Promise.all([api.listHosts(), agentRoutes(sources)]);
  const vms = (await Promise.all(hosts.map((host) => allVms(api, host.hostId)))).flat().map(vmOf);
  const networks = new Map<string, Topology['networks'][number]>();
  for (const vm of vms) networks.set(vm.networkId, { networkId: vm.networkId, tenantId: vm.tenantId });
  for (const route of agents.flatMap((agent) => agent.routes))
    if (!networks.has(route.networkId)) networks.set(route.networkId, { networkId: route.networkId });
  return {
    viewer,
    hosts: hosts
      .map(({ hostId, address, capacity, vmCount, health, lastSeen }) => ({ hostId, address, capacity, vmCount, health, ...(lastSeen ? { lastSeen } : {}) }))
      .sort(byId('hostId')),
    networks: [...networks.values()].sort(byId('networkId')),
    vms: vms.sort(byId('name')),
    agents,
  };
}
