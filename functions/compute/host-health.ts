import { DOWN_AFTER_MS, SUSPECT_AFTER_MS, type HostHealth } from '#events/host-health.ts';

/** What the control plane knows of a host's liveness: its agent's last heartbeat (ms, the control plane's clock) and the operator's cordon. */
export interface Liveness {
  lastSeenMs?: number;
  cordoned?: boolean;
}

/**
 * A host's health now. Silence wins over a cordon: a cordoned host that died is `down`, which is
 * what its VMs need said. Measured on the control plane's clock only (the heartbeat's arrival), so
 * a host's clock cannot make it look alive.
 */
export function healthOf({ lastSeenMs, cordoned }: Liveness, nowMs: number): HostHealth {
  if (lastSeenMs === undefined) return 'down';
  const silentMs = nowMs - lastSeenMs;
  if (silentMs >= DOWN_AFTER_MS) return 'down';
  if (silentMs >= SUSPECT_AFTER_MS) return 'suspect';
  return cordoned ? 'cordoned' : 'healthy';
}

/** Silent for less than this, a host may well be back in a moment (an agent restarting, the control plane itself just back). */
export const MAYBE_BACK_MS = 2 * 60_000;

/**
 * Why placement keeps off a host, or undefined when it may place there. `transient`: the host
 * was heard from lately (a restarting agent, or the control plane's own outage, silences every
 * host at once), so a caller that named it should retry (503) rather than give up (409).
 */
export function unplaceableBecause(hostId: string, liveness: Liveness, nowMs: number): { reason: string; transient: boolean } | undefined {
  const health = healthOf(liveness, nowMs);
  if (health === 'healthy') return undefined;
  if (health === 'cordoned') return { reason: `host ${hostId} is cordoned`, transient: false };
  const seen = liveness.lastSeenMs === undefined ? 'never heard from' : `last heard from ${new Date(liveness.lastSeenMs).toISOString()}`;
  const transient = liveness.lastSeenMs !== undefined && nowMs - liveness.lastSeenMs < MAYBE_BACK_MS;
  return { reason: `host ${hostId} is ${health} (${seen})${transient ? '; retry: a host that is back is heard from within 5 s' : ''}`, transient };
}
