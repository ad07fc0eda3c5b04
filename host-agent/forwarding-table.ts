import type { EndpointEntry, NetworkMessage } from '#events/endpoints.ts';

export interface TableEntry extends EndpointEntry {
  /** When this agent applied this version (ms since epoch). */
  appliedAt: number;
}

interface NetworkState {
  /** Highest membership epoch seen for this network. */
  epoch: number;
  member: boolean;
  /** Keyed by VM IP. Released slots stay as tombstones so an old update cannot resurrect them. */
  entries: Map<string, TableEntry>;
}

export interface LocalVm {
  vmId: string;
  ip: string;
  networkId: string;
}

export interface ApplyResult {
  applied: number;
  stale: number;
  /** The entries this message changed, as now held. */
  changed: TableEntry[];
}

/**
 * The agent's forwarding state: per network, VM IP → tunnel endpoint. Every rule here makes
 * duplicated or reordered messages harmless: an entry only moves to a higher version, and a
 * membership only moves to a higher epoch.
 */
export class ForwardingTable {
  private readonly networks = new Map<string, NetworkState>();
  /** The VMs placed on `selfHostId`, kept as entries change: the agent asks after every message. */
  private readonly local = new Map<string, LocalVm>();

  /** `selfHostId`: the host whose VMs `localVms()` lists. */
  constructor(private readonly selfHostId?: string) {}

  apply(message: NetworkMessage, now = Date.now()): ApplyResult {
    const network = this.networks.get(message.networkId) ?? { epoch: 0, member: false, entries: new Map<string, TableEntry>() };
    this.networks.set(message.networkId, network);

    if (message.kind === 'leave') {
      if (message.epoch <= network.epoch) return { applied: 0, stale: 1, changed: [] };
      network.epoch = message.epoch;
      network.member = false;
      for (const ip of network.entries.keys()) this.local.delete(localKey(message.networkId, ip));
      network.entries.clear();
      return { applied: 1, stale: 0, changed: [] };
    }

    if (message.epoch > network.epoch) {
      network.epoch = message.epoch;
      network.member = true;
    } else if (!network.member) {
      // Sent while this host was still a member of a network it has since left.
      return { applied: 0, stale: message.entries.length, changed: [] };
    }
    const result: ApplyResult = { applied: 0, stale: 0, changed: [] };
    for (const entry of message.entries) {
      const current = network.entries.get(entry.ip);
      if (current && current.version >= entry.version) {
        result.stale++;
        continue;
      }
      const held = { ...entry, appliedAt: now };
      network.entries.set(entry.ip, held);
      const key = localKey(message.networkId, entry.ip);
      if (held.state === 'active' && held.vmId && held.hostId !== undefined && held.hostId === this.selfHostId)
        this.local.set(key, { vmId: held.vmId, ip: held.ip, networkId: message.networkId });
      else this.local.delete(key);
      result.changed.push(held);
      result.applied++;
    }
    return result;
  }

  /** The entry for a VM IP in a network, tombstones included. */
  entry(networkId: string, ip: string): TableEntry | undefined {
    return this.networks.get(networkId)?.entries.get(ip);
  }

  /** Routes a data plane would program: active entries of networks this host belongs to. */
  routes(): { networkId: string; ip: string; endpoint: string; vmId: string; hostId?: string; version: number }[] {
    const routes = [];
    for (const [networkId, network] of this.networks) {
      if (!network.member) continue;
      for (const entry of network.entries.values()) {
        if (entry.state === 'active' && entry.endpoint && entry.vmId) {
          routes.push({ networkId, ip: entry.ip, endpoint: entry.endpoint, vmId: entry.vmId, hostId: entry.hostId, version: entry.version });
        }
      }
    }
    return routes.sort((a, b) => a.networkId.localeCompare(b.networkId) || a.ip.localeCompare(b.ip, undefined, { numeric: true }));
  }

  /** The VMs this table places on its own host (`selfHostId`), without a scan. */
  localVms(): LocalVm[] {
    return [...this.local.values()];
  }

  toJSON() {
    return Object.fromEntries(
      [...this.networks].map(([networkId, network]) => [
        networkId,
        { epoch: network.epoch, member: network.member, entries: Object.fromEntries(network.entries) },
      ]),
    );
  }
}

const localKey = (networkId: string, ip: string) => `${networkId} ${ip}`;
