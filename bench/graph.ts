import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startLocalStack } from '../local/local-stack.ts';
import { projectRoot } from '../local/processes.ts';
import { apiClient, keepHostsAlive } from './api-client.ts';

/**
 * Cascading delete: builds projects of N resources (networks, VMs, disks, service accounts, with
 * VMs using the others), deletes each, and prints the time from the API's 202 to the project
 * being gone, and how many graph messages the graph function handled per node.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: { sizes: { type: 'string', default: '10,100,1000' }, concurrency: { type: 'string', default: '8' } },
});
const sizes = values.sizes!.split(',').map(Number);
const concurrency = Number(values.concurrency);
if (sizes.some((size) => !(size >= 4)) || !(concurrency >= 1)) throw new Error('--sizes are counts >= 4, --concurrency >= 1');

/** Runs `work` over `items` with at most `concurrency` at once. */
async function inParallel<T, R>(items: T[], work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await work(items[index]!, index);
      }
    }),
  );
  return results;
}

console.error('starting the local control plane...');
const stateDir = path.join(projectRoot, '.local-run', `bench-${process.pid}`);
const stack = await startLocalStack({ agentCount: 0, stateDir, log: () => {} });
try {
  const asOperator = await apiClient(stack, 'operator', 'bench');
  const hostIds = ['graph-bench-1', 'graph-bench-2'];
  for (const [i, hostId] of hostIds.entries()) await asOperator.registerHost({ body: { hostId, address: `192.0.2.${100 + i}`, capacity: 5000 } });
  await keepHostsAlive(stack, hostIds);
  await asOperator.registerStoragePool({ body: { poolId: 'graph-bench', capacityGiB: 10_000_000, iops: 100_000_000, throughputMiBps: 10_000_000 } });
  // A project of a thousand resources is past the default quotas: an operator raises them, as for any large tenant.
  await asOperator.putQuota({ params: { tenantId: 'graph-bench' }, body: { vms: 100_000, disks: 100_000, diskGiB: 100_000_000, networks: 100_000 } });
  const api = await apiClient(stack, 'tenant', 'graph-bench');
  const graphRecords = async () => {
    const functions = (await (await fetch(`${stack.runner.apiUrl.replace(/\/v1$/, '')}/_local/functions`)).json()) as Record<string, { records: number }>;
    return Object.entries(functions).find(([id]) => id.startsWith('ResourceGraph'))![1].records;
  };

  const rows: string[] = [];
  for (const [round, size] of sizes.entries()) {
    const networkCount = Math.max(1, Math.round(size * 0.05));
    const accountCount = Math.max(1, Math.round(size * 0.02));
    const vmCount = Math.round((size - networkCount - accountCount) * 0.65);
    const diskCount = size - networkCount - accountCount - vmCount;
    console.error(`building a project of ${size}: ${networkCount} networks, ${vmCount} VMs, ${diskCount} disks, ${accountCount} service accounts...`);
    const { projectId } = await api.createProject({ body: { name: `bench-${size}` } });
    const networks = await inParallel(Array.from({ length: networkCount }), (_, i) =>
      api.createNetwork({ body: { name: `net-${i}`, cidr: `10.${(round * 40 + i) % 250}.0.0/22`, projectId } }),
    );
    const accounts = await inParallel(Array.from({ length: accountCount }), (_, i) => api.createServiceAccount({ body: { name: `sa-${i}`, projectId } }));
    const vms = await inParallel(Array.from({ length: vmCount }), (_, i) =>
      asOperator.createVm({ body: { name: `vm-${i}`, networkId: networks[i % networkCount]!.networkId, hostId: hostIds[i % 2], tenantId: 'graph-bench' } }),
    );
    await inParallel(
      vms.filter((_, i) => i % 5 === 0),
      (vm, i) => api.attachServiceAccount({ params: { vmId: vm.vmId }, body: { serviceAccountId: accounts[i % accountCount]!.serviceAccountId } }),
    );
    await inParallel(Array.from({ length: diskCount }), async (_, i) => {
      const disk = await api.createDisk({ body: { name: `disk-${i}`, sizeGiB: 10, projectId } });
      // Half the disks are in use by a VM, so the cascade has to wait for users.
      if (i % 2 === 0 && vms.length > 0) await api.attachDisk({ params: { diskId: disk.diskId }, body: { vmId: vms[Math.floor(i / 2) % vms.length]!.vmId } });
    });

    const recordsBefore = await graphRecords();
    const started = performance.now();
    await api.deleteProject({ params: { projectId } });
    for (;;) {
      if ((await api.send('getProject', { params: { projectId } })).status === 404) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const seconds = (performance.now() - started) / 1000;
    const messages = (await graphRecords()) - recordsBefore;
    rows.push(
      `  ${String(size).padStart(5)} resources   ${seconds.toFixed(2).padStart(7)} s   ${String(messages).padStart(6)} messages   ${(messages / (size + 1)).toFixed(2)} per node   ${((seconds * 1000) / (size + 1)).toFixed(1)} ms per node`,
    );
    console.error(rows.at(-1));
  }
  console.log('bench:graph  cascading delete of a project: API 202 -> project gone; graph messages handled (FIFO, one group per node)');
  for (const row of rows) console.log(row);
} finally {
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
