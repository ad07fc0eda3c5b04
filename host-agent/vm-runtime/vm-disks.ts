import { execFile } from 'node:child_process';
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, rmSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { QmpClient } from './qmp-client.ts';

const run = promisify(execFile);

const DISK_ID = /^disk-[0-9a-f]{12}$/;
/** A storage pool's id as the API makes them (`events/identifiers.ts`' resourceId): never `..`, never a slash. */
const POOL_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** A disk as QEMU sees it: its file in its storage pool's folder, and the limits QEMU enforces on it. */
export interface DiskAttachment {
  diskId: string;
  file: string;
  format: 'raw' | 'qcow2';
  iops: number;
  throughputMiBps: number;
  /** Its slot on the VM's disk bridge, as the control plane placed it; none: the first free one. */
  slot?: number;
}

/** Disks a VM can have at once: slots on its disk bridge. */
export const DISK_SLOTS = 8;
const DISK_BUS = 'disks';

/**
 * The bus each VM's disks are plugged into: one PCI bridge, hot-plugged through ACPI (the guest
 * kernel's acpiphp). Eight PCIe root ports, one per disk, did the same and cost the guest 0.3–0.6 s
 * of boot here (each a bridge the kernel enumerates, with its own hot-plug slot, PME and AER).
 */
export function diskBusArgs(): string[] {
  return ['-device', `pcie-pci-bridge,id=${DISK_BUS},bus=pcie.0`];
}

const nodeOf = (diskId: string) => `node-${diskId}`;
const deviceOf = (diskId: string) => `dev-${diskId}`;

function checkId(diskId: string) {
  if (!DISK_ID.test(diskId)) throw new Error(`not a disk id: ${JSON.stringify(diskId)}`);
}

/** A storage pool's folder on this host: `<poolsDir>/<poolId>`; an id that could leave `poolsDir` is refused. */
export function poolDirOf(poolsDir: string, poolId: string): string {
  if (!POOL_ID.test(poolId)) throw new Error(`not a storage pool id: ${JSON.stringify(poolId)}`);
  return path.join(poolsDir, poolId);
}

/**
 * The disk's file in its pool's folder, made sparse at its size if it is not there yet (a raw file
 * by truncation, qcow2 by `qemu-img create`), grown if the disk grew; never shrunk. Returns its path.
 */
export async function ensureDiskFile(poolDir: string, diskId: string, sizeGiB: number, format: DiskAttachment['format']): Promise<string> {
  checkId(diskId);
  mkdirSync(poolDir, { recursive: true, mode: 0o700 });
  const file = path.join(poolDir, `${diskId}.${format}`);
  if (format === 'raw') {
    // No qemu-img needed: a raw disk is its bytes, and a file extended by truncation takes no blocks.
    if (!existsSync(file)) {
      const fd = openSync(file, 'wx', 0o600);
      try {
        ftruncateSync(fd, sizeGiB * GiB);
      } finally {
        closeSync(fd);
      }
      return file;
    }
    const size = statSync(file).size;
    if (size > sizeGiB * GiB) throw new Error(`disk ${diskId} is ${size / GiB} GiB on this host; a disk never shrinks`);
    if (size < sizeGiB * GiB) truncateSync(file, sizeGiB * GiB);
    return file;
  }
  if (!existsSync(file)) {
    await run('qemu-img', ['create', '-q', '-f', format, file, `${sizeGiB}G`]);
    return file;
  }
  const { stdout } = await run('qemu-img', ['info', '--output=json', '-f', format, file]);
  const virtualSize = (JSON.parse(stdout) as { 'virtual-size': number })['virtual-size'];
  if (virtualSize > sizeGiB * GiB) throw new Error(`disk ${diskId} is ${virtualSize / GiB} GiB on this host; a disk never shrinks`);
  if (virtualSize < sizeGiB * GiB) await run('qemu-img', ['resize', '-q', '-f', format, file, `${sizeGiB}G`]);
  return file;
}

/** QEMU's I/O limits for the disk: its IOPS and its throughput, reads and writes together (as EBS counts them). */
export async function setDiskLimits(qmp: QmpClient, diskId: string, iops: number, throughputMiBps: number): Promise<void> {
  checkId(diskId);
  await qmp.execute('block_set_io_throttle', {
    // The block backend hangs off the virtio device inside the PCI proxy device.
    id: `/machine/peripheral/${deviceOf(diskId)}/virtio-backend`,
    iops,
    iops_rd: 0,
    iops_wr: 0,
    bps: throughputMiBps * MiB,
    bps_rd: 0,
    bps_wr: 0,
  });
}

/** Plugs the disk into the VM as a virtio-blk device (serial = disk id, so the guest can tell which) and sets its limits. */
export async function attachDisk(qmp: QmpClient, slot: number, disk: DiskAttachment): Promise<void> {
  checkId(disk.diskId);
  await qmp.execute('blockdev-add', {
    'node-name': nodeOf(disk.diskId),
    driver: disk.format,
    file: { driver: 'file', filename: disk.file },
    discard: 'unmap',
  });
  try {
    await qmp.execute('device_add', {
      driver: 'virtio-blk-pci',
      id: deviceOf(disk.diskId),
      drive: nodeOf(disk.diskId),
      bus: DISK_BUS,
      addr: `0x${(slot + 1).toString(16)}`,
      serial: disk.diskId,
    });
  } catch (error) {
    await qmp.execute('blockdev-del', { 'node-name': nodeOf(disk.diskId) }).catch(() => {});
    throw error;
  }
  await setDiskLimits(qmp, disk.diskId, disk.iops, disk.throughputMiBps);
}

/**
 * Unplugs the disk: the guest is asked to release the device (PCIe hot-unplug), then QEMU closes the
 * file. A guest that does not let go within `timeoutMs` keeps it: the caller reports that.
 */
export async function detachDisk(qmp: QmpClient, diskId: string, timeoutMs = 15_000): Promise<void> {
  checkId(diskId);
  const deleted = qmp.waitFor('DEVICE_DELETED', timeoutMs, (event) => event.data?.device === deviceOf(diskId));
  deleted.catch(() => {});
  await qmp.execute('device_del', { id: deviceOf(diskId) });
  await deleted;
  await qmp.execute('blockdev-del', { 'node-name': nodeOf(diskId) });
}

/** Grows an attached disk while the guest runs (the guest sees the new size at once). */
export async function growDisk(qmp: QmpClient, diskId: string, sizeGiB: number): Promise<void> {
  checkId(diskId);
  await qmp.execute('block_resize', { 'node-name': nodeOf(diskId), size: sizeGiB * GiB });
}

/** Every disk plugged into the VM, with what QEMU enforces on it, as `query-block` reports it. */
export async function pluggedDisks(qmp: QmpClient): Promise<{ diskId: string; iops: number; throughputMiBps: number; sizeBytes: number }[]> {
  const devices = await qmp.execute<{ qdev?: string; inserted?: { iops: number; bps: number; image?: { 'virtual-size'?: number } } }[]>('query-block');
  return devices.flatMap((device) => {
    const diskId = /dev-(disk-[0-9a-f]{12})/.exec(device.qdev ?? '')?.[1];
    if (!diskId || !device.inserted) return [];
    const { iops, bps, image } = device.inserted;
    return [{ diskId, iops, throughputMiBps: bps / MiB, sizeBytes: image?.['virtual-size'] ?? 0 }];
  });
}

/** What QEMU enforces on the disk now, as `query-block` reports it. */
export async function diskLimits(qmp: QmpClient, diskId: string): Promise<{ iops: number; bps: number } | undefined> {
  const devices = await qmp.execute<{ qdev?: string; inserted?: { iops: number; bps: number } }[]>('query-block');
  const device = devices.find((entry) => entry.qdev?.includes(deviceOf(diskId)));
  return device?.inserted && { iops: device.inserted.iops, bps: device.inserted.bps };
}

/** Deletes the disk's file from its pool's folder (the disk was deleted); true if there was one. */
export function deleteDiskFiles(poolDir: string, diskId: string): boolean {
  checkId(diskId);
  let deleted = false;
  for (const format of ['raw', 'qcow2']) {
    const file = path.join(poolDir, `${diskId}.${format}`);
    if (existsSync(file)) {
      rmSync(file, { force: true });
      deleted = true;
    }
  }
  return deleted;
}
