import type { VmState } from '#events/vm-lifecycle.ts';
import { type Liveness, healthOf } from './host-health.ts';
import type { VmView } from './vms.ts';
import { lastSeenOf } from './host-liveness.ts';

/** States a host's report stands behind: while the host is down nobody can vouch for them. */
const VOUCHED: ReadonlySet<VmState> = new Set(['provisioning', 'starting', 'running', 'migrating', 'stopping']);

/**
 * The VM as its owner should see it given its host's liveness: `unreachable` while its host is
 * down, since what the host last reported may no longer be true. A stopped or failed VM stays so
 * (nothing of it runs), and a suspect host's VMs keep their state until the host is down.
 */
export function asSeenThroughHost(vm: VmView, host: Liveness, nowMs: number): VmView {
  if (!VOUCHED.has(vm.state) || healthOf(host, nowMs) !== 'down') return vm;
  const seen = host.lastSeenMs === undefined ? 'never heard from' : `last heard from ${new Date(host.lastSeenMs).toISOString()}`;
  return { ...vm, state: 'unreachable', stateReason: `its host ${vm.hostId} is down (${seen}); it was ${vm.state}` };
}

/** The VMs as their owners should see them, each through its host's liveness now (see asSeenThroughHost). */
export async function withHostHealth(livenessTable: string, vms: VmView[]): Promise<VmView[]> {
  if (vms.length === 0) return vms;
  const seen = await lastSeenOf(
    livenessTable,
    vms.map((vm) => vm.hostId),
  );
  const now = Date.now();
  return vms.map((vm) => asSeenThroughHost(vm, { lastSeenMs: seen.get(vm.hostId) }, now));
}
