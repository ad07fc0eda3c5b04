import { describe, expect, it } from 'vitest';
import { DOWN_AFTER_MS, HEARTBEAT_INTERVAL_MS, SUSPECT_AFTER_MS } from '#events/host-health.ts';
import { healthOf, MAYBE_BACK_MS, unplaceableBecause } from '#functions/compute/host-health.ts';
import { asSeenThroughHost } from '#functions/compute/vm-reachability.ts';
import type { VmView } from '#functions/compute/vms.ts';

const now = Date.parse('2026-12-04T12:00:00Z');

describe('host health', () => {
  it('is healthy while heartbeats arrive, suspect after two missed, down after the bound or when never heard from', () => {
    expect(healthOf({ lastSeenMs: now - HEARTBEAT_INTERVAL_MS }, now)).toBe('healthy');
    expect(healthOf({ lastSeenMs: now - SUSPECT_AFTER_MS }, now)).toBe('suspect');
    expect(healthOf({ lastSeenMs: now - DOWN_AFTER_MS }, now)).toBe('down');
    expect(healthOf({}, now)).toBe('down');
    // A heartbeat "from the future" (clocks are the control plane's own, but a replica's may lead) is alive, not an error.
    expect(healthOf({ lastSeenMs: now + 1_000 }, now)).toBe('healthy');
  });

  it('says cordoned only of a live host: a cordoned host that died is down', () => {
    expect(healthOf({ lastSeenMs: now, cordoned: true }, now)).toBe('cordoned');
    expect(healthOf({ lastSeenMs: now - DOWN_AFTER_MS, cordoned: true }, now)).toBe('down');
  });

  it('keeps placement off every host but a healthy one, saying why', () => {
    expect(unplaceableBecause('h', { lastSeenMs: now }, now)).toBeUndefined();
    expect(unplaceableBecause('h', { lastSeenMs: now, cordoned: true }, now)).toEqual({ reason: 'host h is cordoned', transient: false });
    expect(unplaceableBecause('h', {}, now)).toEqual({ reason: 'host h is down (never heard from)', transient: false });
    // Heard from lately: maybe back in a moment (a restarting agent, or the control plane's own outage), so retry.
    expect(unplaceableBecause('h', { lastSeenMs: now - SUSPECT_AFTER_MS }, now)).toEqual({
      reason: `host h is suspect (last heard from ${new Date(now - SUSPECT_AFTER_MS).toISOString()}); retry: a host that is back is heard from within 5 s`,
      transient: true,
    });
    expect(unplaceableBecause('h', { lastSeenMs: now - DOWN_AFTER_MS }, now)?.transient).toBe(true);
    expect(unplaceableBecause('h', { lastSeenMs: now - MAYBE_BACK_MS }, now)).toEqual({
      reason: `host h is down (last heard from ${new Date(now - MAYBE_BACK_MS).toISOString()})`,
      transient: false,
    });
  });

  it('is measured so that a killed agent’s host is down within 30 s', () => {
    // Killed just before a heartbeat was due: its last one is an interval old already.
    expect(HEARTBEAT_INTERVAL_MS + DOWN_AFTER_MS).toBeLessThanOrEqual(30_000);
    expect(SUSPECT_AFTER_MS).toBeGreaterThanOrEqual(2 * HEARTBEAT_INTERVAL_MS);
  });
});

describe('a VM seen through its host', () => {
  const vm = (state: VmView['state']) => ({ vmId: 'vm-1', hostId: 'h', state }) as VmView;

  it('is unreachable while its host is down, saying what it was and since when', () => {
    const seen = asSeenThroughHost(vm('running'), { lastSeenMs: now - DOWN_AFTER_MS }, now);
    expect(seen.state).toBe('unreachable');
    expect(seen.stateReason).toBe(`its host h is down (last heard from ${new Date(now - DOWN_AFTER_MS).toISOString()}); it was running`);
    expect(asSeenThroughHost(vm('migrating'), {}, now).state).toBe('unreachable');
  });

  it('keeps what its host said while the host is alive or only suspect, and a stopped or failed VM as it is', () => {
    expect(asSeenThroughHost(vm('running'), { lastSeenMs: now }, now).state).toBe('running');
    expect(asSeenThroughHost(vm('running'), { lastSeenMs: now - SUSPECT_AFTER_MS }, now).state).toBe('running');
    expect(asSeenThroughHost(vm('stopped'), {}, now).state).toBe('stopped');
    expect(asSeenThroughHost(vm('failed'), {}, now).state).toBe('failed');
  });
});
