import type { LocalVm } from './forwarding-table.ts';
import { VmMetadataServer, type MetadataBackend } from './metadata-server.ts';

/**
 * One metadata server per VM this host runs, started when the VM appears in the forwarding table
 * on this host and stopped when it moves away or is deleted.
 */
export class VmBridges {
  private readonly servers = new Map<string, VmMetadataServer>();
  private reconciling: Promise<void> = Promise.resolve();

  constructor(
    private readonly backend: MetadataBackend,
    private readonly log: (message: string) => void,
  ) {}

  /** Brings the set of servers to exactly these VMs; calls are serialized. */
  reconcile(vms: readonly LocalVm[]): Promise<void> {
    this.reconciling = this.reconciling.then(() => this.apply(vms)).catch((error: Error) => this.log(`bridges: ${error.message}`));
    return this.reconciling;
  }

  list(): Record<string, { ip: string; networkId: string; metadataUrl: string }> {
    return Object.fromEntries([...this.servers].map(([vmId, server]) => [vmId, { ip: server.vm.ip, networkId: server.vm.networkId, metadataUrl: server.url }]));
  }

  async close(): Promise<void> {
    await this.reconcile([]);
  }

  private async apply(vms: readonly LocalVm[]) {
    const wanted = new Map(vms.map((vm) => [vm.vmId, vm]));
    for (const [vmId, server] of this.servers) {
      const vm = wanted.get(vmId);
      if (vm && vm.ip === server.vm.ip && vm.networkId === server.vm.networkId) continue;
      this.servers.delete(vmId);
      await server.close();
    }
    for (const vm of wanted.values()) {
      if (this.servers.has(vm.vmId)) continue;
      const server = new VmMetadataServer(vm, this.backend, this.log);
      await server.listen();
      this.servers.set(vm.vmId, server);
    }
  }
}
