import type { QmpClient, QmpEvent } from './qmp-client.ts';

/**
 * A guest's disks copied to another host while it runs (non-shared storage migration, as
 * libvirt and OpenStack's block migration do it): the destination's QEMU serves its fresh copies
 * of the disks over NBD, the source mirrors each disk into them (a full copy, then every write
 * as it happens), and once the guest paused for its last memory copy each mirror is finished
 * (its last writes flushed) before the destination may run the guest.
 */

/** The NBD export and the nodes of one disk in a move. */
const exportOf = (diskId: string) => `move-${diskId}`;
const sourceNodeOf = (diskId: string) => `node-${diskId}`;
const targetNodeOf = (diskId: string) => `move-target-${diskId}`;
const jobOf = (diskId: string) => `move-${diskId}`;

/** Where a destination takes the disks' writes, over TLS with the move's credentials (the id of QEMU's object). */
export interface DiskCopyAddress {
  address: string;
  port: number;
  tlsCredentialsId: string;
}

/**
 * Destination, before the guest comes: serves the VM's (plugged, still empty) disks for writing
 * at `listen`. QEMU activates a node it exports, so the writes land where the guest will read.
 */
export async function serveDisksForArrival(qmp: QmpClient, listen: DiskCopyAddress, diskIds: readonly string[]): Promise<void> {
  if (diskIds.length === 0) return;
  await qmp.execute('nbd-server-start', {
    addr: { type: 'inet', data: { host: listen.address, port: String(listen.port) } },
    'tls-creds': listen.tlsCredentialsId,
  });
  for (const diskId of diskIds) {
    await qmp.execute('block-export-add', { type: 'nbd', id: exportOf(diskId), 'node-name': sourceNodeOf(diskId), name: diskId, writable: true });
  }
}

/** Destination, once the guest runs here: nothing more may write its disks from outside. */
export async function stopServingDisks(qmp: QmpClient): Promise<void> {
  await qmp.execute('nbd-server-stop').catch(() => {});
}

/**
 * Source: mirrors each disk into the destination's copy; resolves once every copy caught up (each
 * job READY: from then on the guest's writes go to both). Rejects (and undoes what it began) if a
 * job fails or they do not all catch up within `boundMs`.
 */
export async function mirrorDisks(qmp: QmpClient, to: DiskCopyAddress, diskIds: readonly string[], boundMs: number): Promise<void> {
  if (diskIds.length === 0) return;
  const pending = new Set(diskIds.map(jobOf));
  const ready = new Promise<void>((resolve, reject) => {
    const onEvent = (event: QmpEvent) => {
      const job = event.data?.device as string | undefined;
      if (!job || !pending.has(job)) return;
      if (event.event === 'BLOCK_JOB_READY') {
        pending.delete(job);
        if (pending.size === 0) settle(() => resolve());
      } else if (event.event === 'BLOCK_JOB_COMPLETED' || event.event === 'BLOCK_JOB_CANCELLED' || event.event === 'BLOCK_JOB_ERROR') {
        const said = (event.data?.error as string | undefined) ?? event.event.toLowerCase();
        settle(() => reject(new Error(`copying disk ${job.slice('move-'.length)} to the destination failed: ${said}`)));
      }
    };
    const timer = setTimeout(() => settle(() => reject(new Error(`the disks were not copied to the destination within ${boundMs / 1000} s`))), boundMs);
    const settle = (then: () => void) => {
      clearTimeout(timer);
      qmp.off('event', onEvent);
      then();
    };
    qmp.on('event', onEvent);
  });
  ready.catch(() => {});
  try {
    for (const diskId of diskIds) {
      await qmp.execute('blockdev-add', {
        'node-name': targetNodeOf(diskId),
        driver: 'nbd',
        server: { type: 'inet', host: to.address, port: String(to.port) },
        export: diskId,
        'tls-creds': to.tlsCredentialsId,
        'tls-hostname': to.address,
      });
      await qmp.execute('blockdev-mirror', {
        'job-id': jobOf(diskId),
        device: sourceNodeOf(diskId),
        target: targetNodeOf(diskId),
        sync: 'full',
      });
    }
    await ready;
  } catch (error) {
    await abandonMirrors(qmp, diskIds);
    throw error;
  }
}

/**
 * Source, with the guest paused for its last copy: finishes each mirror (its writes up to now
 * flushed to the destination, the source keeping its own disk) and lets go of the destination.
 */
export async function finishMirrors(qmp: QmpClient, diskIds: readonly string[], timeoutMs = 10_000): Promise<void> {
  await Promise.all(
    diskIds.map(async (diskId) => {
      const ended = qmp.waitFor('BLOCK_JOB_COMPLETED', timeoutMs, (event) => event.data?.device === jobOf(diskId));
      ended.catch(() => {});
      // A mirror that is READY and cancelled completes: the copy is whole, the guest stays on its own disk.
      await qmp.execute('block-job-cancel', { device: jobOf(diskId) });
      const event = await ended;
      if (event.data?.error) throw new Error(`copying disk ${diskId} to the destination failed at its end: ${event.data.error as string}`);
    }),
  );
  await releaseTargets(qmp, diskIds);
}

/** Source, when the move failed: every mirror stopped at once, the destination let go of. */
export async function abandonMirrors(qmp: QmpClient, diskIds: readonly string[]): Promise<void> {
  const jobs = await qmp.execute<{ device: string }[]>('query-block-jobs').catch(() => []);
  const ours = new Set(diskIds.map(jobOf));
  await Promise.all(
    jobs
      .filter((job) => ours.has(job.device))
      .map(async (job) => {
        const ended = qmp.waitFor('BLOCK_JOB_CANCELLED', 5_000, (event) => event.data?.device === job.device).catch(() => undefined);
        await qmp.execute('block-job-cancel', { device: job.device, force: true }).catch(() => {});
        await ended;
      }),
  );
  await releaseTargets(qmp, diskIds);
}

async function releaseTargets(qmp: QmpClient, diskIds: readonly string[]): Promise<void> {
  for (const diskId of diskIds) await qmp.execute('blockdev-del', { 'node-name': targetNodeOf(diskId) }).catch(() => {});
}
