import { describe, expect, it } from 'vitest';
import { DOWN_AFTER_MS } from '#events/host-health.ts';
import { isFullDisruption, restartDecision } from '#functions/compute/host-recovery.ts';
import { rateMs } from '../../local/schedules.ts';

const now = Date.parse('2026-12-04T12:00:00Z');

describe('restarting a down host’s VMs elsewhere', () => {
  const running = { onHostFailure: 'restart' as const, state: 'running' as const, powerState: 'running' as const };

  it('restarts only a VM that asked for it and can be booted afresh elsewhere', () => {
    expect(restartDecision(running)).toEqual({ restart: true });
    expect(restartDecision({ ...running, state: 'provisioning' })).toEqual({ restart: true });
    expect(restartDecision({ ...running, onHostFailure: undefined })).toEqual({ restart: false, why: 'its onHostFailure is wait' });
    expect(restartDecision({ ...running, onHostFailure: 'wait' })).toEqual({ restart: false, why: 'its onHostFailure is wait' });
    expect(restartDecision({ ...running, diskIds: new Set(['disk-1']) })).toEqual({ restart: false, why: 'its disks’ data is on the dead host' });
    expect(restartDecision({ ...running, state: 'stopped', powerState: 'stopped' })).toEqual({ restart: false, why: 'it is stopped' });
    expect(restartDecision({ ...running, state: 'failed' })).toEqual({ restart: false, why: 'it is failed' });
  });

  it('restarts nothing when every host heard from lately went silent together (the control plane’s fault, likelier)', () => {
    const down = { lastSeenMs: now - DOWN_AFTER_MS - 1_000 };
    const alive = { lastSeenMs: now - 1_000 };
    const longGone = { lastSeenMs: now - 3_600_000 };
    expect(isFullDisruption([down, down, down], now)).toBe(true);
    expect(isFullDisruption([down, down, alive], now)).toBe(false);
    // One host, or hosts gone long ago and never heard from: an ordinary death.
    expect(isFullDisruption([down], now)).toBe(false);
    expect(isFullDisruption([down, longGone, {}], now)).toBe(false);
  });
});

describe('local schedules', () => {
  it('reads EventBridge rates and refuses what it cannot run', () => {
    expect(rateMs('rate(1 minute)')).toBe(60_000);
    expect(rateMs('rate(5 minutes)')).toBe(300_000);
    expect(rateMs('rate(2 hours)')).toBe(7_200_000);
    expect(() => rateMs('cron(0 12 * * ? *)')).toThrow('only rate(N minute|hour|day) schedules run locally');
  });
});
