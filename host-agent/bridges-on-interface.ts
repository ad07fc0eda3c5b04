import { BIDDER_PORT, type BridgeRedirects, type BridgeService, EGRESS_PROXY_PORT, METADATA_ADDRESS } from './data-plane/bridge-redirects.ts';
import { routingTableOf, vmInterfaceName, vniOf } from './data-plane/desired-state.ts';
import type { LocalVm } from './forwarding-table.ts';
import type { NetnsSockets } from './netns-sockets.ts';
import type { BridgePlacement, InterfaceServer } from './vm-bridges.ts';

/**
 * Each VM's metadata server at http://169.254.169.254, its outbound proxy at
 * http://169.254.169.254:3128 and its bidder port at 169.254.169.254:7070, on the VM's own interface, in the host's namespace: their listening
 * sockets are made there, and the VM's interface is redirected to them (BridgeRedirects). Which VM
 * is asking is where its packets came in, not a port it can choose.
 */
export class BridgesOnInterface implements BridgePlacement {
  private readonly ports = new Map<string, Partial<Record<BridgeService, number>>>();

  constructor(
    private readonly sockets: NetnsSockets,
    private readonly redirects: () => BridgeRedirects,
  ) {}

  async open(vm: LocalVm, servers: Record<BridgeService, InterfaceServer>): Promise<void> {
    const ports: Partial<Record<BridgeService, number>> = {};
    this.ports.set(vm.vmId, ports);
    for (const [service, server] of Object.entries(servers) as [BridgeService, InterfaceServer][]) {
      const port = await server.listen(await this.sockets.listen(METADATA_ADDRESS));
      ports[service] = port;
      await this.redirects().add(service, vmInterfaceName(vm.vmId), port, routingTableOf(vniOf(vm.networkId)));
    }
  }

  async close(vm: LocalVm, servers: Record<BridgeService, InterfaceServer>): Promise<void> {
    const ports = this.ports.get(vm.vmId) ?? {};
    this.ports.delete(vm.vmId);
    for (const [service, server] of Object.entries(servers) as [BridgeService, InterfaceServer][]) {
      const port = ports[service];
      if (port !== undefined) await this.redirects().remove(service, vmInterfaceName(vm.vmId), port, routingTableOf(vniOf(vm.networkId)));
      await server.close();
    }
  }

  describe(vm: LocalVm): { metadataUrl: string; egressProxyUrl: string; bidderAddress: string } {
    const ports = this.ports.get(vm.vmId) ?? {};
    const device = vmInterfaceName(vm.vmId);
    return {
      metadataUrl: `http://${METADATA_ADDRESS} from ${device} only (served on port ${ports.metadata} in the host namespace)`,
      egressProxyUrl: `http://${METADATA_ADDRESS}:${EGRESS_PROXY_PORT} from ${device} only (served on port ${ports.egress} in the host namespace)`,
      bidderAddress: `${METADATA_ADDRESS}:${BIDDER_PORT} from ${device} only (served on port ${ports.bidder} in the host namespace)`,
    };
  }
}
