import { nft } from './nft.ts';
import type { DesiredState } from './desired-state.ts';
import { VM_GATEWAY } from './plan-commands.ts';

/** The nftables table (inet) that keeps networks apart and admits network pairs between them. */
export const NETWORKS_TABLE = 'stratoplane_networks';
const TABLE = NETWORKS_TABLE;
/** The tunnel that carries traffic between networks, pair by pair (network-pairs.ts). */
export const PAIR_DEVICE = 'vxpairs';

/** One interface of one network on this host: its VXLAN device, or a local VM's interface. */
export interface NetworkInterface {
  device: string;
  vni: number;
  /** A VM's interface (traffic is delivered to it), not the network's tunnel. */
  vm: boolean;
}

/** Every interface of every network the host is a member of, from the data plane's desired state. */
export function networkInterfaces(desired: DesiredState): NetworkInterface[] {
  return [...desired.values()].flatMap((network) => [
    { device: network.device, vni: network.vni, vm: false },
    ...[...network.local.values()].map((device) => ({ device, vni: network.vni, vm: true })),
  ]);
}

/**
 * Default deny between networks, where traffic is delivered: in the host's namespace a packet
 * routed to a VM's interface passes only if it came in on an interface of the VM's own network
 * (that network's tunnel, or another local VM of it), or belongs to a connection already admitted
 * (conntrack: replies). Anything else, whatever routing would do with it (a route too many, a
 * future pair route), is dropped and counted. Routing keeps networks apart already (a routing
 * table each); this holds even when a route is wrong. nftables: the in-interface's network (its
 * VNI) from a map, then a lookup of (VNI . out-interface) among the network's VM interfaces.
 *
 * VMs stay off the underlay, where tunnels and hosts' services are: a packet from a VM's interface
 * is forwarded only to a VM here or into its own network's tunnel (never out to the fabric, where
 * a forged VXLAN datagram would land in any network on any host), and reaches this host itself only
 * as a connection its bridge's services took (DNAT to 169.254.169.254), an answer, or a ping of its
 * gateway; the rest is dropped and counted.
 *
 * Between networks, traffic passes only as an admitted network pair, over the pair tunnel
 * (network-pairs.ts): toward a VM, a packet from that tunnel passes only while its (source .
 * destination) is in `admitted_pairs` (a new connection) or `live_pairs` (an open one: a pair
 * withdrawn from both stops its flows at once, from the first only its new ones), or as an answer
 * to a connection the VM opened; from a VM, into that tunnel, only
 * while its (source . destination) is in `routed_pairs`, or as an answer. Both sets' entries
 * expire with the token that admitted them.
 *
 * Like anti-spoofing, an earlier agent's entries stay while a new one starts, so its VMs keep
 * their traffic; until the agent knows the host's whole state it only adds, then it makes the
 * entries exactly the desired ones each time.
 */
export class NetworkIsolation {
  private whole = false;
  /** What was last applied, so a programming that changes no interface (a remote VM moved) costs nothing here. */
  private applied = '';

  private constructor(private readonly netns: string) {}

  static async open(netns: string): Promise<NetworkIsolation> {
    const isolation = new NetworkIsolation(netns);
    // The table and its entries made if missing (kept if there), the rules replaced.
    await isolation.nft(`table inet ${TABLE} {
  map network_of { type ifname : mark; }
  set vm_interfaces { type mark . ifname; }
  set tunnels { type mark . ifname; }
  set admitted_pairs { type ipv4_addr . ipv4_addr; flags timeout; }
  set live_pairs { type ipv4_addr . ipv4_addr; flags timeout; }
  set routed_pairs { type ipv4_addr . ipv4_addr; flags timeout; }
  chain forward { type filter hook forward priority filter; policy accept; }
  chain input { type filter hook input priority filter; policy accept; }
  chain to_vm { }
  chain from_vm { }
  chain vm_to_host { }
}
flush chain inet ${TABLE} forward
flush chain inet ${TABLE} input
flush chain inet ${TABLE} to_vm
flush chain inet ${TABLE} from_vm
flush chain inet ${TABLE} vm_to_host
add rule inet ${TABLE} forward oifname "sp*" jump to_vm
add rule inet ${TABLE} forward iifname "sp*" jump from_vm
add rule inet ${TABLE} to_vm iifname "${PAIR_DEVICE}" ct direction reply accept
add rule inet ${TABLE} to_vm iifname "${PAIR_DEVICE}" ct state new ip saddr . ip daddr @admitted_pairs accept
add rule inet ${TABLE} to_vm iifname "${PAIR_DEVICE}" ct state established,related ip saddr . ip daddr @live_pairs accept
add rule inet ${TABLE} to_vm iifname "${PAIR_DEVICE}" counter drop
add rule inet ${TABLE} to_vm ct state established,related accept
add rule inet ${TABLE} to_vm meta mark set 0
add rule inet ${TABLE} to_vm meta mark set iifname map @network_of
add rule inet ${TABLE} to_vm meta mark . oifname @vm_interfaces accept
add rule inet ${TABLE} to_vm counter drop
add rule inet ${TABLE} from_vm oifname "${PAIR_DEVICE}" ct direction reply accept
add rule inet ${TABLE} from_vm oifname "${PAIR_DEVICE}" ip saddr . ip daddr @routed_pairs accept
add rule inet ${TABLE} from_vm meta mark set 0
add rule inet ${TABLE} from_vm meta mark set iifname map @network_of
add rule inet ${TABLE} from_vm meta mark . oifname @tunnels accept
add rule inet ${TABLE} from_vm counter drop
add rule inet ${TABLE} input iifname "sp*" jump vm_to_host
add rule inet ${TABLE} vm_to_host ct status dnat accept
add rule inet ${TABLE} vm_to_host ct state established,related accept
add rule inet ${TABLE} vm_to_host ip daddr ${VM_GATEWAY} icmp type echo-request accept
add rule inet ${TABLE} vm_to_host counter drop
`);
    return isolation;
  }

  /** Makes the entries those of `desired`; `complete`: it is the host's whole state (before one, entries are only added). */
  async sync(desired: DesiredState, complete: boolean): Promise<void> {
    const interfaces = networkInterfaces(desired);
    const key = JSON.stringify(interfaces);
    if (key === this.applied && (this.whole || !complete)) return;
    if (complete) this.whole = true;
    const lines = this.whole ? [`flush map inet ${TABLE} network_of`, `flush set inet ${TABLE} vm_interfaces`, `flush set inet ${TABLE} tunnels`] : [];
    if (interfaces.length > 0) {
      lines.push(`add element inet ${TABLE} network_of { ${interfaces.map(({ device, vni }) => `"${device}" : ${vni}`).join(', ')} }`);
      const entries = (vm: boolean) => interfaces.filter((entry) => entry.vm === vm).map(({ device, vni }) => `${vni} . "${device}"`);
      if (entries(true).length > 0) lines.push(`add element inet ${TABLE} vm_interfaces { ${entries(true).join(', ')} }`);
      if (entries(false).length > 0) lines.push(`add element inet ${TABLE} tunnels { ${entries(false).join(', ')} }`);
    }
    if (lines.length > 0) await this.nft(`${lines.join('\n')}\n`);
    this.applied = key;
  }

  private nft(script: string): Promise<void> {
    return nft(this.netns, script, 'keeping networks apart');
  }
}
