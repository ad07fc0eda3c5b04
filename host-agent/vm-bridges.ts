import type net from 'node:net';
import { BidderLink } from './bidder-link.ts';
import type { BridgeService } from './data-plane/bridge-redirects.ts';
import { VmEgressProxy, type EgressBackend } from './egress-proxy.ts';
import type { LocalVm } from './forwarding-table.ts';
import { METADATA_RATE_LIMITS, VmMetadataServer, type MetadataBackend } from './metadata-server.ts';

/** A bridge server that can take a listening socket made elsewhere (in the host's namespace); answers its port. */
export interface InterfaceServer {
  listen(on: net.Server): Promise<number>;
  close(): Promise<void>;
}

/**
 * Where VMs' metadata servers, outbound proxies and bidder ports listen when not on 127.0.0.1: at
 * 169.254.169.254 (ports 80, 3128 and 7070) on each VM's own interface (see BridgesOnInterface).
 */
export interface BridgePlacement {
  open(vm: LocalVm, servers: Record<BridgeService, InterfaceServer>): Promise<void>;
  close(vm: LocalVm, servers: Record<BridgeService, InterfaceServer>): Promise<void>;
  /** How a VM's servers are reached, for the status. */
  describe(vm: LocalVm): { metadataUrl: string; egressProxyUrl: string; bidderAddress: string };
}

/** A VM's service bridge: its metadata server, its outbound proxy and its bidder port, all for that VM only (on its interface, where there is a host namespace). */
interface Bridge {
  vm: LocalVm;
  metadata: VmMetadataServer;
  egress: VmEgressProxy;
  bidder: BidderLink;
}

/**
 * One service bridge per VM this host runs, started when the VM appears in the forwarding table
 * on this host and stopped when it moves away or is deleted. Which VM a request comes from is
 * which bridge received it, never anything in the request: with a host namespace, which interface
 * the VM's packets came in on (BridgePlacement); without, which 127.0.0.1 port (development only).
 */
export class VmBridges {
  private readonly bridges = new Map<string, Bridge>();
  private reconciling: Promise<void> = Promise.resolve();

  constructor(
    private readonly backend: MetadataBackend & EgressBackend,
    private readonly log: (message: string) => void,
    private readonly placement?: BridgePlacement,
    private readonly metadataLimits = METADATA_RATE_LIMITS,
  ) {}

  /** Brings the set of bridges to exactly these VMs; calls are serialized. */
  reconcile(vms: readonly LocalVm[]): Promise<void> {
    this.reconciling = this.reconciling.then(() => this.apply(vms)).catch((error: Error) => this.log(`bridges: ${error.message}`));
    return this.reconciling;
  }

  list() {
    return Object.fromEntries(
      [...this.bridges].map(([vmId, { vm, metadata, egress, bidder }]) => [
        vmId,
        {
          ip: vm.ip,
          networkId: vm.networkId,
          ...(this.placement ? this.placement.describe(vm) : { metadataUrl: metadata.url, egressProxyUrl: egress.url }),
          egress: egress.stats,
          bidderPort: bidder.port,
          bidder: { connected: bidder.connected, ...bidder.stats },
        },
      ]),
    );
  }

  /** The bidder link of a VM on this host, for the bid relay. */
  bidderOf(vmId: string): BidderLink | undefined {
    return this.bridges.get(vmId)?.bidder;
  }

  async close(): Promise<void> {
    await this.reconcile([]);
  }

  private async apply(vms: readonly LocalVm[]) {
    const wanted = new Map(vms.map((vm) => [vm.vmId, vm]));
    for (const [vmId, bridge] of this.bridges) {
      const vm = wanted.get(vmId);
      if (vm && vm.ip === bridge.vm.ip && vm.networkId === bridge.vm.networkId) continue;
      this.bridges.delete(vmId);
      await Promise.all([
        ...(this.placement
          ? [this.placement.close(bridge.vm, { metadata: bridge.metadata, egress: bridge.egress, bidder: bridge.bidder })]
          : [bridge.metadata.close(), bridge.egress.close(), bridge.bidder.close()]),
      ]);
    }
    for (const vm of wanted.values()) {
      if (this.bridges.has(vm.vmId)) continue;
      const bridge = {
        vm,
        metadata: new VmMetadataServer(vm, this.backend, this.log, this.metadataLimits),
        egress: new VmEgressProxy(vm, this.backend, this.log),
        bidder: new BidderLink(vm.vmId, this.log, vm.ip),
      };
      if (this.placement) await this.placement.open(vm, { metadata: bridge.metadata, egress: bridge.egress, bidder: bridge.bidder });
      else await Promise.all([bridge.metadata.listen(), bridge.egress.listen(), bridge.bidder.listen()]);
      this.bridges.set(vm.vmId, bridge);
    }
  }
}
