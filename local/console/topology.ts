/** Where the console looks: the API (as a tenant and as an operator) and each host agent's status. */
export interface ConsoleSources {
  apiUrl: string;
  tenantToken: string;
  operatorToken: string;
  agents: readonly { hostId: string; statusUrl: string }[];
}

export interface Topology {
  hosts: { hostId: string; address: string; capacity: number; vmCount: number }[];
  networks: { networkId: string; name: string; cidr: string }[];
  vms: { vmId: string; name: string; ip: string; hostId: string; networkId: string; state: string; endpoint: string }[];
  /** What each agent holds: for every VM of its networks, the tunnel endpoint and the version it came with. */
  agents: { hostId: string; reachable: boolean; routes: { networkId: string; ip: string; endpoint: string; vmId: string; version: number }[] }[];
}

async function apiGet(sources: ConsoleSources, token: string, path: string): Promise<any> {
  const response = await fetch(`${sources.apiUrl}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

/** Every item of a paged list route. */
async function listAll(sources: ConsoleSources, path: string, key: string): Promise<any[]> {
  const items: any[] = [];
  let nextToken: string | undefined;
  do {
    const page = await apiGet(sources, sources.tenantToken, `${path}?limit=100${nextToken ? `&nextToken=${encodeURIComponent(nextToken)}` : ''}`);
    items.push(...page[key]);
    nextToken = page.nextToken;
  } while (nextToken);
  return items;
}

const byId = <T>(key: keyof T) => (a: T, b: T) => String(a[key]).localeCompare(String(b[key]), undefined, { numeric: true });

export async function gatherTopology(sources: ConsoleSources): Promise<Topology> {
  const [hosts, networks, vms, agents] = await Promise.all([
    apiGet(sources, sources.operatorToken, '/hosts').then(({ hosts }) => hosts as any[]),
    listAll(sources, '/networks', 'networks'),
    listAll(sources, '/vms', 'vms'),
    Promise.all(
      sources.agents.map(async ({ hostId, statusUrl }) => {
        try {
          const response = await fetch(`${statusUrl}/status`, { signal: AbortSignal.timeout(2_000) });
          const { routes } = (await response.json()) as { routes: Topology['agents'][number]['routes'] };
          return { hostId, reachable: true, routes };
        } catch {
          return { hostId, reachable: false, routes: [] };
        }
      }),
    ),
  ]);
  return {
    hosts: hosts.map(({ hostId, address, capacity, vmCount }) => ({ hostId, address, capacity, vmCount })).sort(byId('hostId')),
    networks: networks.map(({ networkId, name, cidr }) => ({ networkId, name, cidr })).sort(byId('name')),
    vms: vms.map(({ vmId, name, ip, hostId, networkId, state, endpoint }) => ({ vmId, name, ip, hostId, networkId, state, endpoint: endpoint.address })).sort(byId('name')),
    agents,
  };
}
