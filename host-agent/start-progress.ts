/** How long a start phase runs before the agent says it is still in it. */
export const SLOW_PHASE_MS = 5_000;

/**
 * Names the agent's start phases as they run, so that a start that hangs says where: a phase that
 * takes longer than `slowMs` is logged while it runs (every `slowMs`) and once more when it ends.
 * Quick phases say nothing; the whole start's duration is kept for the ready line.
 */
export class StartProgress {
  private readonly startedAt: number;

  constructor(
    private readonly log: (message: string) => void,
    private readonly slowMs = SLOW_PHASE_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  async phase<T>(name: string, action: () => Promise<T>): Promise<T> {
    const began = this.now();
    const watch = setInterval(() => this.log(`starting: still ${name} after ${Math.round((this.now() - began) / 1000)} s`), this.slowMs);
    watch.unref();
    try {
      return await action();
    } finally {
      clearInterval(watch);
      const took = this.now() - began;
      if (took >= this.slowMs) this.log(`starting: ${name} took ${took} ms`);
    }
  }

  /** Milliseconds since the start began. */
  elapsedMs(): number {
    return this.now() - this.startedAt;
  }
}
