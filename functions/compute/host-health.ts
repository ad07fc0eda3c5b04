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

/** Why placement keeps off a host, or undefined when it may place there. */
export function unplaceableBecause(hostId: string, liveness: Liveness, nowMs: number): string | undefined {
  const health = healthOf(liveness, nowMs);
  if (health === 'healthy') return undefined;
  const seen = liveness.lastSeenMs === undefined ? 'never heard from' : `last heard from ${new Date(liveness.lastSeenMs).toISOString()}`;
  return health === 'cordoned' ? `host ${hostId} is cordoned` : `host ${hostId} is ${health} (${seen})`;
}
