import type { EgressPolicy, HostVmConfigs, VmAttributes } from '#events/vm-config.ts';
import type { HostMigrationRole } from '#events/migrations.ts';
import { getHost } from '../compute/hosts.ts';
import { assertHomeRegion } from '../core/regions.ts';
import { shuffleJobsFor } from '../shuffle/shuffle-jobs.ts';
import { getVm, getVmFor, listVmsOnHost, type StoredVm, toVmView, updateTenantVm, type VmView } from '../compute/vms.ts';
import { migratingVmIdsOfHost } from '../compute/live-migration.ts';
import { getItem } from '../core/store.ts';
import { pairKeysOf } from '../identity/host-pair-keys.ts';
import { keys } from '../core/table-keys.ts';
import type { DiskItem } from '../storage/disks.ts';
import { type ImageObject, imageObjectIn, launchDisksOf, launchSpecOf, presignImageUrl } from './vm-launch.ts';

/**
 * Sets one part of a VM's configuration that its bridge serves: what its outbound proxy lets out
 * (`egress`), or its custom metadata (`attributes`). The change reaches the VM's host agent like a
 * service-account change: the stream tells the host to fetch its VMs' configuration again.
 */
async function setVmConfig(
  table: string,
  region: string,
  tenantId: string,
  vmId: string,
  change: { egress: EgressPolicy } | { attributes: VmAttributes },
): Promise<VmView> {
  const vm = assertHomeRegion(await getVm(table, tenantId, vmId), region, `vm ${vmId}`);
  const [[name, value]] = Object.entries(change) as [[string, unknown]];
  const updatedAt = new Date().toISOString();
  await updateTenantVm(table, tenantId, vmId, {
    expression: 'SET #part = :value, updatedAt = :now',
    names: { '#part': name },
    values: { ':value': value, ':now': updatedAt },
  });
  return toVmView({ ...vm, ...change, updatedAt });
}

export const setEgressPolicy = (table: string, region: string, tenantId: string, vmId: string, egress: EgressPolicy) =>
  setVmConfig(table, region, tenantId, vmId, { egress });

export const setVmAttributes = (table: string, region: string, tenantId: string, vmId: string, attributes: VmAttributes) =>
  setVmConfig(table, region, tenantId, vmId, { attributes });

/**
 * What a host needs to run its VMs: how to launch each (size, power intent, image with a URL to
 * fetch it, attached disks), their bridges' configuration (a VM without egress policy reaches nothing), their
 * wrapped pair secrets and their shuffle jobs: one request for all of it whenever anything changed.
 */
export async function vmConfigsOfHost(
  table: string,
  region: string,
  hostId: string,
  egressOpenCidrs: readonly string[],
  presign: (object: ImageObject) => Promise<string> = presignImageUrl,
): Promise<HostVmConfigs> {
  await getHost(table, hostId);
  const [onHost, migrating] = await Promise.all([listVmsOnHost(table, hostId), migratingVmIdsOfHost(table, hostId)]);
  // A VM moving live to or from this host is in its configs at both ends while it moves.
  const arriving = migrating.filter((vmId) => !onHost.some((vm) => vm.vmId === vmId));
  const vms = [
    ...onHost,
    ...(await Promise.all(arriving.map((vmId) => getVmFor(table, undefined, vmId).catch(() => undefined)))).filter((vm) => vm !== undefined),
  ];
  // One lookup and one URL per image however many of the host's VMs boot from it.
  const images = new Map<string, Promise<(ImageObject & { url: string }) | undefined>>();
  const imageOf = (imageId: string) => {
    let image = images.get(imageId);
    if (!image) {
      image = imageObjectIn(table, imageId, region).then(async (object) => object && { ...object, url: await presign(object) });
      images.set(imageId, image);
    }
    return image;
  };
  const [configs, pairKeys, shuffleJobs] = await Promise.all([
    Promise.all(
      vms.map(async (vm) => {
        // Each attached disk's own record: its pool, size and limits (a VM has at most 8).
        const disks = launchDisksOf(vm.vmId, await Promise.all([...(vm.diskIds ?? [])].map((diskId) => getItem<DiskItem>(table, keys.disk(diskId)))));
        const launch = launchSpecOf(vm, vm.imageId && !vm.waitingForImage ? await imageOf(vm.imageId) : undefined, disks);
        const migration = migrationRoleOf(vm, hostId);
        return {
          vmId: vm.vmId,
          tenantId: vm.tenantId,
          ...(vm.serviceAccountId ? { serviceAccountId: vm.serviceAccountId } : {}),
          egress: vm.egress,
          attributes: vm.attributes,
          ...(launch ? { launch } : {}),
          ...(migration ? { migration } : {}),
        };
      }),
    ),
    // The VMs it runs only: a VM on its way here is not its to unwrap yet.
    pairKeysOf(table, onHost),
    shuffleJobsFor(
      table,
      vms.flatMap((vm) => [...(vm.shuffleJobIds ?? [])]),
    ),
  ]);
  return { hostId, vms: configs, pairKeys, shuffleJobs, egressOpenCidrs: [...egressOpenCidrs] };
}

/** The host's part in the VM's live migration, if one runs and the host is an end of it. */
export function migrationRoleOf(vm: StoredVm, hostId: string): HostMigrationRole | undefined {
  const migration = vm.migration;
  if (!migration) return undefined;
  const role = hostId === migration.sourceHostId ? 'source' : hostId === migration.targetHostId ? 'target' : undefined;
  if (!role) return undefined;
  return {
    migrationId: migration.migrationId,
    role,
    phase: migration.phase,
    peerHostId: role === 'source' ? migration.targetHostId : migration.sourceHostId,
    peerAddress: role === 'source' ? migration.targetAddress : migration.sourceAddress,
    ...peerCertificateOf(role === 'source' ? migration.targetCertificate : migration.sourceCertificate),
    ...(migration.port !== undefined ? { port: migration.port } : {}),
    networkId: vm.networkId,
    ip: vm.ip,
  };
}

const peerCertificateOf = (certificate: string | undefined) => (certificate ? { peerCertificate: certificate } : {});
