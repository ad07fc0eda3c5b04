import type { DesiredState, NetworkPlan } from './desired-state.ts';

/** Lines for `ip -batch` or `bridge -batch`, in the order they must run. */
export interface CommandPlan {
  /** Networks whose VXLAN device must be made first (one `ip link add` each). */
  newDevices: NetworkPlan[];
  /** Deletions that let the additions after them be made once however often they run: finding nothing is no error. */
  ipPrepare: string[];
  /** Idempotent changes: safe to run again after a failure. */
  bridgeApply: string[];
  ipApply: string[];
  /** Removals of what is no longer wanted: one that finds nothing to remove is no error. */
  ipRemove: string[];
  bridgeRemove: string[];
}

/** The address every host-side VM interface has: each VM's default gateway, as on GCE's .1. */
export const VM_GATEWAY = '169.254.0.1';
/** Priority of the rules that send a network's traffic to its own routing table. */
export const RULE_PRIORITY = 10_000;

/** A host's VXLAN device address: its underlay address in the low four bytes, so every host can compute any other's. */
export function macOf(underlay: string): string {
  return ['02', '53', ...underlay.split('.').map((octet) => Number(octet).toString(16).padStart(2, '0'))].join(':');
}

/**
 * The commands that take a host from what was programmed to what is desired. Each network has
 * its own VXLAN device (its VNI), its own routing table, and one forwarding entry per remote host
 * (the tunnel endpoint); each remote VM IP is a route through the device with a permanent
 * neighbour entry naming its host's device address, so a migration elsewhere changes one
 * neighbour entry; each local VM IP is a route to the VM's interface.
 */
export function planCommands(programmed: DesiredState, desired: DesiredState): CommandPlan {
  const plan: CommandPlan = { newDevices: [], ipPrepare: [], bridgeApply: [], ipApply: [], ipRemove: [], bridgeRemove: [] };
  for (const [networkId, next] of desired) {
    const before = programmed.get(networkId);
    if (!before) plan.newDevices.push(next);
    addNetworkChanges(plan, before, next);
  }
  for (const [networkId, before] of programmed) {
    if (desired.has(networkId)) continue;
    for (const device of before.local.values()) plan.ipRemove.push(ruleDel(device, before.table));
    plan.ipRemove.push(...networkRemoval(before.device, before.table));
  }
  return plan;
}

const ruleDel = (device: string, table: number) => `rule del pref ${RULE_PRIORITY} iif ${device} lookup ${table}`;

/** What takes a network's device off a host: its rule, its routing table, the device. */
export function networkRemoval(device: string, table: number): string[] {
  return [ruleDel(device, table), `route flush table ${table}`, `link del ${device}`];
}

function addNetworkChanges(plan: CommandPlan, before: NetworkPlan | undefined, next: NetworkPlan): void {
  const { device, table } = next;
  const endpointsBefore = new Set(before?.remote.values() ?? []);
  const endpointsNext = new Set(next.remote.values());
  for (const endpoint of endpointsNext)
    if (!endpointsBefore.has(endpoint)) plan.bridgeApply.push(`fdb replace ${macOf(endpoint)} dev ${device} dst ${endpoint} self permanent`);
  for (const endpoint of endpointsBefore)
    if (!endpointsNext.has(endpoint)) plan.bridgeRemove.push(`fdb del ${macOf(endpoint)} dev ${device} dst ${endpoint} self`);

  for (const [ip, vmDevice] of next.local) {
    if (before?.local.get(ip) === vmDevice) continue;
    plan.ipPrepare.push(ruleDel(vmDevice, table));
    plan.ipApply.push(
      `addr replace ${VM_GATEWAY}/32 dev ${vmDevice}`,
      `link set ${vmDevice} up`,
      `rule add pref ${RULE_PRIORITY} iif ${vmDevice} lookup ${table}`,
      `route replace ${ip}/32 dev ${vmDevice} table ${table}`,
    );
  }
  for (const [ip, endpoint] of next.remote) {
    if (before?.remote.get(ip) === endpoint) continue;
    if (!before?.remote.has(ip)) plan.ipApply.push(`route replace ${ip}/32 dev ${device} table ${table}`);
    plan.ipApply.push(`neigh replace ${ip} lladdr ${macOf(endpoint)} dev ${device} nud permanent`);
  }
  for (const [ip, vmDevice] of before?.local ?? []) {
    if (next.local.get(ip) === vmDevice) continue;
    plan.ipRemove.push(ruleDel(vmDevice, table));
    if (!next.remote.has(ip) && !next.local.has(ip)) plan.ipRemove.push(`route del ${ip}/32 table ${table}`);
  }
  for (const ip of before?.remote.keys() ?? []) {
    if (next.remote.has(ip)) continue;
    plan.ipRemove.push(`neigh del ${ip} dev ${device}`);
    if (!next.local.has(ip)) plan.ipRemove.push(`route del ${ip}/32 table ${table}`);
  }
}
