import { createHash } from 'node:crypto';
import type { ForwardingTable } from '../forwarding-table.ts';

/** What one network needs on this host: its local VMs' interfaces and the remote VMs' tunnel endpoints. */
export interface NetworkPlan {
  networkId: string;
  /** VXLAN network identifier, and the routing table that keeps the network's addresses apart from others'. */
  vni: number;
  table: number;
  device: string;
  /** VM IP → the host-side interface its VM is plugged into. */
  local: Map<string, string>;
  /** VM IP → underlay address of the host that runs it. */
  remote: Map<string, string>;
}

/** The data plane this host should have, by network id. */
export type DesiredState = Map<string, NetworkPlan>;

const hash = (text: string) => createHash('sha256').update(text).digest();

/**
 * A network's VXLAN id, from its id: 24 bits, never 0 nor 0xffffff (the network-pair tunnel's).
 * Two networks on one host could draw the same one (about one pair in 16 million); the agent
 * refuses the second and says so.
 */
export function vniOf(networkId: string): number {
  const vni = hash(networkId).readUInt32BE(0) & 0xffffff || 1;
  return vni === 0xffffff ? 0xfffffe : vni;
}

/**
 * The host-side interface a VM is plugged into, named from its id (at most 15 characters, as
 * Linux wants): the VM runtime that plugs the VM in and the agent agree on it without talking.
 */
export function vmInterfaceName(vmId: string): string {
  return `sp${hash(vmId).toString('hex').slice(0, 12)}`;
}

/** A network's device and routing table on every host, from its VNI. */
export function deviceOf(vni: number): string {
  return `vx${vni.toString(16).padStart(6, '0')}`;
}
export function routingTableOf(vni: number): number {
  return 1000 + vni;
}
/** The VNI of one of our devices, from its name. */
export function vniOfDevice(device: string): number {
  return Number.parseInt(device.slice(2), 16);
}

/**
 * Where a VM that moves live has its traffic sent before the forwarding table says so: to its
 * guest here (a destination, from before the guest arrives), or to the host it went to (a source,
 * from the moment the guest paused for its last copy: the redirect that makes the move
 * make-before-break).
 */
export type MigrationRoute = { runsHere: true } | { runsHere: false; endpoint: string };

/** What the forwarding table says this host needs (every network it is a member of), with the routes of VMs moving live. */
export function desiredState(table: ForwardingTable, hostId: string, migrating: ReadonlyMap<string, MigrationRoute> = new Map()): DesiredState {
  const state: DesiredState = new Map();
  for (const route of table.routes()) {
    let plan = state.get(route.networkId);
    if (!plan) {
      const vni = vniOf(route.networkId);
      plan = { networkId: route.networkId, vni, table: routingTableOf(vni), device: deviceOf(vni), local: new Map(), remote: new Map() };
      state.set(route.networkId, plan);
    }
    const moving = migrating.get(route.vmId);
    if (moving ? moving.runsHere : route.hostId === hostId) plan.local.set(route.ip, vmInterfaceName(route.vmId));
    else plan.remote.set(route.ip, moving && !moving.runsHere ? moving.endpoint : route.endpoint);
  }
  return state;
}
