import { METADATA_ADDRESS, type MetadataRedirects } from './data-plane/metadata-redirects.ts';
import { routingTableOf, vmInterfaceName, vniOf } from './data-plane/desired-state.ts';
import type { LocalVm } from './forwarding-table.ts';
import type { VmMetadataServer } from './metadata-server.ts';
import type { NetnsSockets } from './netns-sockets.ts';
import type { MetadataPlacement } from './vm-bridges.ts';

/**
 * Each VM's metadata server at http://169.254.169.254 on the VM's own interface, in the host's
 * namespace: its listening socket is made there, and the VM's interface is redirected to it
 * (MetadataRedirects). Which VM is asking is where its packets came in, not a port it can choose.
 */
export class MetadataOnInterface implements MetadataPlacement {
  private readonly ports = new Map<string, number>();

  constructor(
    private readonly sockets: NetnsSockets,
    private readonly redirects: () => MetadataRedirects,
  ) {}

  async open(vm: LocalVm, server: VmMetadataServer): Promise<void> {
    const port = await server.listen(await this.sockets.listen(METADATA_ADDRESS));
    await this.redirects().add(vmInterfaceName(vm.vmId), port, routingTableOf(vniOf(vm.networkId)));
    this.ports.set(vm.vmId, port);
  }

  async close(vm: LocalVm, server: VmMetadataServer): Promise<void> {
    const port = this.ports.get(vm.vmId);
    this.ports.delete(vm.vmId);
    if (port !== undefined) await this.redirects().remove(vmInterfaceName(vm.vmId), port, routingTableOf(vniOf(vm.networkId)));
    await server.close();
  }

  describe(vm: LocalVm): string {
    return `http://${METADATA_ADDRESS} from ${vmInterfaceName(vm.vmId)} only (served on port ${this.ports.get(vm.vmId)} in the host namespace)`;
  }
}
