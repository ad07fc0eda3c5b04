import { describe, expect, it } from 'vitest';
import { describeDuration, RestartPolicy } from '../../local/restart-policy.ts';

const options = { firstDelayMs: 1_000, maxDelayMs: 30_000, maxDeaths: 5, windowMs: 300_000, stableMs: 60_000 };

describe('RestartPolicy', () => {
  it('backs off from 1 s, doubling, and gives up at the fifth quick death', () => {
    const policy = new RestartPolicy(options);
    const decisions = [0, 2_000, 5_000, 10_000, 20_000].map((now) => policy.died(now, 500));
    expect(decisions).toEqual([
      { restart: true, delayMs: 1_000, deaths: 1 },
      { restart: true, delayMs: 2_000, deaths: 2 },
      { restart: true, delayMs: 4_000, deaths: 3 },
      { restart: true, delayMs: 8_000, deaths: 4 },
      { restart: false, deaths: 5 },
    ]);
  });

  it('caps the delay', () => {
    const policy = new RestartPolicy({ ...options, maxDeaths: 100 });
    let last = 0;
    for (let death = 0; death < 10; death++) {
      const decision = policy.died(death * 1_000, 10);
      if (decision.restart) last = decision.delayMs;
    }
    expect(last).toBe(30_000);
  });

  it('forgets deaths older than the window', () => {
    const policy = new RestartPolicy(options);
    for (const now of [0, 1_000, 2_000, 3_000]) policy.died(now, 100);
    // Four deaths long ago, one now: the first of a new series.
    expect(policy.died(400_000, 100)).toEqual({ restart: true, delayMs: 1_000, deaths: 1 });
  });

  it('starts over after a run that lasted the stable period', () => {
    const policy = new RestartPolicy(options);
    for (const now of [0, 1_000, 2_000, 3_000]) policy.died(now, 100);
    expect(policy.died(70_000, 60_000)).toEqual({ restart: true, delayMs: 1_000, deaths: 1 });
  });

  it('starts over when reset (a restart asked for by hand)', () => {
    const policy = new RestartPolicy(options);
    for (const now of [0, 1_000, 2_000, 3_000, 4_000]) policy.died(now, 100);
    policy.reset();
    expect(policy.died(5_000, 100)).toEqual({ restart: true, delayMs: 1_000, deaths: 1 });
  });
});

describe('describeDuration', () => {
  it('says milliseconds, seconds or minutes', () => {
    expect([500, 1_000, 2_500, 30_000, 300_000, 90_000].map(describeDuration)).toEqual(['500 ms', '1 s', '2.5 s', '30 s', '5 min', '90 s']);
  });
});
