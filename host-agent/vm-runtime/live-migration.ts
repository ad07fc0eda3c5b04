import { abandonMirrors, finishMirrors, mirrorDisks, serveDisksForArrival, stopServingDisks } from './disk-migration.ts';
import type { QmpClient, QmpEvent } from './qmp-client.ts';

/**
 * QEMU's live migration, as the measurements on this machine kind asked for
 * (docs/live-migration.md): migration events on, a 20 ms downtime limit, bandwidth that never
 * holds the copy back.
 */
const DOWNTIME_LIMIT_MS = 20;
const MAX_BANDWIDTH_BYTES_PER_SECOND = 10 * 1024 ** 3;

/** What QEMU measured of one migration (the source's `query-migrate` once completed). */
export interface MigrationFigures {
  /** The guest's pause, as QEMU counts it (ms). */
  downtimeMs: number;
  /** From `migrate` to completed (ms). */
  totalMs: number;
  /** Memory sent (bytes). */
  transferredBytes: number;
}

/**
 * The address a destination listens on and its source sends to; a guest's disks go to `diskPort`.
 * `credentials`: this end's TLS credentials for the move (a directory QEMU's `tls-creds-x509`
 * reads, from MigrationIdentity.credentialsFor): memory and disks cross the underlay only in TLS,
 * each end's certificate checked against the one host it expects.
 */
export interface MigrationAddress {
  address: string;
  port: number;
  diskPort?: number;
  credentials: string;
}

/** The id of the TLS credentials object in a guest's QEMU: one migration at a time uses it. */
export const TLS_CREDENTIALS_ID = 'migration-tls';

export const migrationUri = ({ address, port }: MigrationAddress) => `tcp:${address}:${port}`;

/** Migration events on; with disks to copy, the source pauses before the switch-over so their mirrors can finish first. */
async function setCapabilities(qmp: QmpClient, pauseBeforeSwitchover = false): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'pause-before-switchover', state: pauseBeforeSwitchover },
    ],
  });
}

function diskAddress(to: MigrationAddress) {
  if (to.diskPort === undefined) throw new Error('the guest has disks, and no port was given to copy them to');
  return { address: to.address, port: to.diskPort, tlsCredentialsId: TLS_CREDENTIALS_ID };
}

/**
 * Loads this end's credentials into QEMU (it reads the files now), replacing an earlier move's, and
 * makes the migration stream use them: the destination is TLS's server. The source names the
 * destination's address, which its certificate must carry.
 */
async function useCredentials(qmp: QmpClient, directory: string, end: 'server' | 'client', peerAddress?: string): Promise<void> {
  await qmp.execute('object-del', { id: TLS_CREDENTIALS_ID }).catch(() => {});
  await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id: TLS_CREDENTIALS_ID, dir: directory, endpoint: end, 'verify-peer': true });
  await qmp.execute('migrate-set-parameters', { 'tls-creds': TLS_CREDENTIALS_ID, ...(peerAddress ? { 'tls-hostname': peerAddress } : {}) });
}

/**
 * Makes a QEMU started with `-incoming defer` listen for its guest at `listen`, and take the copies
 * of its disks (`diskIds`, plugged in empty) at `listen.diskPort`; resolves once it listens. The
 * returned promise resumes when the guest runs here (QEMU's RESUME), and rejects if the incoming
 * migration fails or QEMU goes away first.
 */
export async function listenForGuest(qmp: QmpClient, listen: MigrationAddress, diskIds: readonly string[] = []): Promise<{ resumed: Promise<void> }> {
  await setCapabilities(qmp);
  await useCredentials(qmp, listen.credentials, 'server');
  if (diskIds.length > 0) await serveDisksForArrival(qmp, diskAddress(listen), diskIds);
  const resumed = new Promise<void>((resolve, reject) => {
    const onEvent = (event: QmpEvent) => {
      if (event.event === 'RESUME') {
        if (diskIds.length > 0) void stopServingDisks(qmp);
        return settle(() => resolve());
      }
      const status = event.event === 'MIGRATION' ? event.data?.status : undefined;
      if (status === 'failed' || status === 'cancelled') settle(() => reject(new Error(`the incoming migration ${status}`)));
    };
    const onClose = () => settle(() => reject(new Error('QEMU exited before the guest arrived')));
    const settle = (then: () => void) => {
      qmp.off('event', onEvent);
      qmp.off('close', onClose);
      then();
    };
    qmp.on('event', onEvent);
    qmp.once('close', onClose);
  });
  // Nobody may be left waiting on a rejection no caller took yet.
  resumed.catch(() => {});
  await qmp.execute('migrate-incoming', { uri: migrationUri(listen) });
  return { resumed };
}

/**
 * Sends a running guest to a destination QEMU that listens at `to`, its disks (`diskIds`) first
 * (mirrored to `to.diskPort` until the guest's last pause). `onStop` runs when the source pauses
 * the guest for the last copy (QEMU's STOP): the moment to send its traffic to the destination.
 * Resolves with QEMU's figures once completed (the guest runs there, and is paused here for good);
 * rejects with QEMU's reason if it failed, and cancels it (`migrate_cancel`) if it has not
 * completed within `boundMs`: in both cases the guest runs on here, on its own disks.
 */
export async function sendGuest(
  qmp: QmpClient,
  to: MigrationAddress,
  options: { boundMs: number; onStop: () => void; diskIds?: readonly string[] },
): Promise<MigrationFigures> {
  const diskIds = options.diskIds ?? [];
  const startedAt = Date.now();
  await setCapabilities(qmp, diskIds.length > 0);
  await useCredentials(qmp, to.credentials, 'client', to.address);
  await qmp.execute('migrate-set-parameters', { 'downtime-limit': DOWNTIME_LIMIT_MS, 'max-bandwidth': MAX_BANDWIDTH_BYTES_PER_SECOND });
  if (diskIds.length > 0) await mirrorDisks(qmp, diskAddress(to), diskIds, options.boundMs);
  let stopped = false;
  let switchoverFailure: Error | undefined;
  let cancelledForTime = false;
  const outcome = new Promise<'completed' | 'failed' | 'cancelled'>((resolve, reject) => {
    const onEvent = (event: QmpEvent) => {
      if (event.event === 'STOP' && !stopped) {
        stopped = true;
        options.onStop();
      }
      const status = event.event === 'MIGRATION' ? event.data?.status : undefined;
      // Paused for good here, before the destination may run it: the disks' last writes go first.
      if (status === 'pre-switchover') {
        void finishMirrors(qmp, diskIds)
          .then(() => qmp.execute('migrate-continue', { state: 'pre-switchover' }))
          .catch((error: Error) => {
            switchoverFailure = error;
            void qmp.execute('migrate_cancel').catch(() => {});
          });
      }
      if (status === 'completed' || status === 'failed' || status === 'cancelled') settle(() => resolve(status));
    };
    const onClose = () => settle(() => reject(new Error('QEMU exited during the migration')));
    const settle = (then: () => void) => {
      clearTimeout(bound);
      qmp.off('event', onEvent);
      qmp.off('close', onClose);
      then();
    };
    const bound = setTimeout(
      () => {
        cancelledForTime = true;
        void qmp.execute('migrate_cancel').catch(() => {});
      },
      Math.max(1, options.boundMs - (Date.now() - startedAt)),
    );
    qmp.on('event', onEvent);
    qmp.once('close', onClose);
  });
  outcome.catch(() => {});
  try {
    await qmp.execute('migrate', { uri: migrationUri(to) });
  } catch (error) {
    await abandonMirrors(qmp, diskIds);
    throw error;
  }
  const status = await outcome;
  const info = await qmp.execute<QueryMigrate>('query-migrate');
  if (status !== 'completed' && diskIds.length > 0) await abandonMirrors(qmp, diskIds);
  if (status === 'completed') {
    return { downtimeMs: info.downtime ?? 0, totalMs: info['total-time'] ?? 0, transferredBytes: info.ram?.transferred ?? 0 };
  }
  if (cancelledForTime) throw new Error(`the migration did not complete within ${options.boundMs / 1000} s: cancelled, the guest runs on at the source`);
  if (switchoverFailure) throw new Error(`${switchoverFailure.message}; the migration was cancelled, the guest runs on at the source`);
  throw new Error(`the migration ${status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}; the guest runs on at the source`);
}

interface QueryMigrate {
  status?: string;
  downtime?: number;
  'total-time'?: number;
  'error-desc'?: string;
  ram?: { transferred?: number };
}
