/** When a supervised process that died is started again, and when to stop trying. */
export interface RestartPolicyOptions {
  /** The wait before the first restart; it doubles with each death in a row. */
  firstDelayMs: number;
  maxDelayMs: number;
  /** Give up at this many deaths within `windowMs`. */
  maxDeaths: number;
  windowMs: number;
  /** A process that ran this long before it died was healthy: its earlier deaths are forgotten. */
  stableMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicyOptions = {
  firstDelayMs: 1_000,
  maxDelayMs: 30_000,
  maxDeaths: 5,
  windowMs: 5 * 60_000,
  stableMs: 60_000,
};

export type RestartDecision = { restart: true; delayMs: number; deaths: number } | { restart: false; deaths: number };

/** Plain bookkeeping, no timers: the supervisor asks it at each death. */
export class RestartPolicy {
  /** When each remembered death happened. */
  private deathTimes: number[] = [];

  constructor(readonly options: RestartPolicyOptions = DEFAULT_RESTART_POLICY) {}

  /** A death at `now` of a process that had run for `ranMs`. */
  died(now: number, ranMs: number): RestartDecision {
    if (ranMs >= this.options.stableMs) this.deathTimes = [];
    this.deathTimes = this.deathTimes.filter((time) => now - time < this.options.windowMs);
    this.deathTimes.push(now);
    const deaths = this.deathTimes.length;
    if (deaths >= this.options.maxDeaths) return { restart: false, deaths };
    return { restart: true, delayMs: Math.min(this.options.maxDelayMs, this.options.firstDelayMs * 2 ** (deaths - 1)), deaths };
  }

  /** Someone asked for a start by hand: back-off and count start over. */
  reset(): void {
    this.deathTimes = [];
  }
}

/** "1 s", "500 ms", "5 min": for log lines. */
export function describeDuration(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 60_000 || ms % 60_000 !== 0) return `${Math.round(ms / 100) / 10} s`;
  return `${ms / 60_000} min`;
}
