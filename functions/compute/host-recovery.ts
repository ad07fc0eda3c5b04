import { DOWN_AFTER_MS } from '#events/host-health.ts';
import type { HostItem } from '#events/records.ts';
import { ClientError } from '../core/errors.ts';
import { healthOf, type Liveness } from './host-health.ts';
import { type IndexedHost, listHosts } from './hosts.ts';
import { livenessOf } from './host-liveness.ts';
import type { DrainDeps } from './host-drains.ts';
import { getVmFor, listVmsOnHost, migrateVm, type StoredVm } from './vms.ts';
import { migratingVmIdsOfHost, reportMigration } from './live-migration.ts';

/** Hosts heard from this recently count when telling a host's failure from the control plane's. */
const OUTAGE_WINDOW_MS = 2 * 60_000;

/**
 * Whether every host heard from lately went silent together (at least two): then the fault is far
 * likelier the control plane's own (its heartbeat route, its network) than every host's, and
 * restarting their VMs elsewhere would run two copies of each wherever the hosts still run them.
 * Nothing is restarted then, as Kubernetes stops evicting from a zone in full disruption.
 */
export function isFullDisruption(hosts: readonly Liveness[], nowMs: number): boolean {
  const recent = hosts.filter((host) => host.lastSeenMs !== undefined && nowMs - host.lastSeenMs < OUTAGE_WINDOW_MS);
  return recent.length >= 2 && recent.every((host) => healthOf(host, nowMs) === 'down');
}

/** Whether a down host's VM is restarted elsewhere, or why not. */
export function restartDecision(
  vm: Pick<StoredVm, 'onHostFailure' | 'diskIds' | 'migration' | 'powerState' | 'state'>,
): { restart: true } | { restart: false; why: string } {
  if (vm.onHostFailure !== 'restart') return { restart: false, why: 'its onHostFailure is wait' };
  if ((vm.diskIds?.size ?? 0) > 0) return { restart: false, why: 'its disks’ data is on the dead host' };
  if (vm.migration) return { restart: false, why: 'it is migrating: the migration’s own bounds end it' };
  if (vm.powerState === 'stopped' || vm.state === 'stopped' || vm.state === 'failed') return { restart: false, why: `it is ${vm.state}` };
  return { restart: true };
}

/** A region's hosts, and when each was last heard from: what a sweep reads once and decides from. */
export interface Fleet {
  hosts: IndexedHost[];
  liveness: Map<string, Liveness>;
}

/** Every host of the region and its last heartbeat: the whole fleet, read once a minute (not per request). */
export async function readFleet(table: string, livenessTable: string, region: string): Promise<Fleet> {
  const hosts: IndexedHost[] = (await listHosts(table)).filter((host) => host.region === undefined || host.region === region);
  return { hosts, liveness: await livenessOf(livenessTable, hosts) };
}

/** What a drain needs, and where to log what a sweep decided. */
export interface RecoveryDeps extends DrainDeps {
  log: (message: string, fields?: Record<string, unknown>) => void;
}

export interface RecoverySummary {
  downHosts: string[];
  restarted: { vmId: string; fromHostId: string; toHostId: string }[];
  left: { vmId: string; hostId: string; why: string }[];
  /** VMs whose live migration from a down host was past its cut-over: completed for the source. */
  migrationsFinished: string[];
  /** Every host went silent together: nothing was restarted. */
  fullDisruption: boolean;
}

/**
 * One sweep (every minute): every VM that asked to be restarted (`onHostFailure: restart`) on a
 * host that is down is moved, at once and once, to a healthy host, where it boots afresh from its
 * image. The move is conditioned on the VM still being on the dead host, so a sweep that runs
 * twice, or a host that comes back meanwhile, never restarts a VM twice; the returning host's agent
 * finds the VM gone from its configuration and stops its copy. Hosts never heard from are left
 * alone: nothing says they ever ran anything.
 */
export async function recoverDownHosts(deps: RecoveryDeps, { hosts, liveness }: Fleet, nowMs = Date.now()): Promise<RecoverySummary> {
  const summary: RecoverySummary = { downHosts: [], restarted: [], left: [], migrationsFinished: [], fullDisruption: false };
  const silent = hosts.filter((host) => {
    const seen = liveness.get(host.hostId)!;
    return seen.lastSeenMs !== undefined && healthOf(seen, nowMs) === 'down';
  });
  // Safe whatever the cause: after the cut-over the guest runs at the destination.
  for (const host of silent) summary.migrationsFinished.push(...(await finishMigrationsFrom(deps.table, host.hostId)));
  const down = silent.filter((host) => host.vmCount > 0);
  summary.downHosts = down.map((host) => host.hostId);
  if (down.length === 0) return summary;
  if (isFullDisruption([...liveness.values()], nowMs)) {
    summary.fullDisruption = true;
    deps.log('every host went silent together: restarting none of their VMs (a control plane or network fault is likelier)', { downHosts: summary.downHosts });
    return summary;
  }
  for (const host of down) await recoverHost(deps, host, liveness.get(host.hostId)!, summary);
  return summary;
}

async function recoverHost(deps: RecoveryDeps, host: HostItem, seen: Liveness, summary: RecoverySummary): Promise<void> {
  const reason = `last heard from ${new Date(seen.lastSeenMs!).toISOString()}, down after ${DOWN_AFTER_MS / 1000} s of silence`;
  for (const vm of await listVmsOnHost(deps.table, host.hostId)) {
    const decision = restartDecision(vm);
    if (!decision.restart) {
      summary.left.push({ vmId: vm.vmId, hostId: host.hostId, why: decision.why });
      continue;
    }
    try {
      const moved = await migrateVm(deps.table, { region: deps.region, livenessTable: deps.livenessTable }, undefined, vm.vmId, {}, deps.newPairKeyCiphertext, {
        fromHostId: host.hostId,
        reason,
      });
      summary.restarted.push({ vmId: vm.vmId, fromHostId: host.hostId, toHostId: moved.hostId });
      await deps.announce(moved);
      deps.log('restarted a VM of a down host elsewhere', { vmId: vm.vmId, fromHostId: host.hostId, toHostId: moved.hostId });
    } catch (error) {
      // No healthy host with room, or the VM moved meanwhile: the next sweep looks again.
      if (!(error instanceof ClientError)) throw error;
      summary.left.push({ vmId: vm.vmId, hostId: host.hostId, why: error.message });
    }
  }
}

/**
 * A live migration whose source host died after the cut-over would wait for the source to let go
 * forever: the guest runs at the destination, so the migration is completed as the source would
 * have (its `cleaned` report). Before the cut-over the migration's own bounds abort it.
 */
async function finishMigrationsFrom(table: string, hostId: string): Promise<string[]> {
  const finished: string[] = [];
  for (const vmId of await migratingVmIdsOfHost(table, hostId)) {
    const { migration } = await getVmFor(table, undefined, vmId);
    if (!migration || migration.sourceHostId !== hostId || (migration.phase !== 'cut-over' && migration.phase !== 'cleaning-up')) continue;
    await reportMigration(table, hostId, vmId, { migrationId: migration.migrationId, event: 'cleaned' });
    finished.push(vmId);
  }
  return finished;
}
