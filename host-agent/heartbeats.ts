import { DOWN_AFTER_MS, HEARTBEAT_INTERVAL_MS } from '#events/host-health.ts';

/** How soon a failed heartbeat is tried again. */
const RETRY_MS = 1_000;

/** What `/status` shows of the agent's heartbeats. */
export interface HeartbeatStats {
  sent: number;
  failed: number;
  lastSentAt?: string;
  lastError?: string;
}

/**
 * Tells the control plane, every few seconds, that this host's agent is alive: the one write per
 * host per interval its health is measured from. A failed heartbeat is counted and tried again
 * within a second; a control plane that hears none marks the host suspect, then down.
 */
export class Heartbeats {
  readonly stats: HeartbeatStats = { sent: 0, failed: 0 };
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  /** When the last heartbeat reached the control plane (this process's clock). */
  private lastSentMs: number | undefined;

  /**
   * `onSilenceEnded` is called when a heartbeat gets through after `downAfterMs` or more without
   * one (the agent's calls failed, or the process was frozen): the control plane may have marked
   * the host down meanwhile and restarted its VMs elsewhere, so the agent must look at once at what
   * is still its own (and stop its stale copies) instead of waiting for its next resync.
   */
  constructor(
    private readonly send: () => Promise<void>,
    private readonly log: (message: string) => void,
    private readonly intervalMs = HEARTBEAT_INTERVAL_MS,
    private readonly onSilenceEnded: (silentMs: number) => void = () => {},
    private readonly downAfterMs = DOWN_AFTER_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    this.next(0);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.stopped = true;
  }

  /**
   * The next heartbeat: at the interval, or within a second while they fail, so that a host is
   * heard from again as soon as the control plane answers again (its own outage silenced every
   * host at once).
   */
  private next(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.beat().then((ok) => this.next(ok ? this.intervalMs : Math.min(this.intervalMs, RETRY_MS)));
    }, delayMs);
    this.timer.unref();
  }

  private async beat(): Promise<boolean> {
    try {
      await this.send();
      const now = Date.now();
      const silentMs = this.lastSentMs === undefined ? 0 : now - this.lastSentMs;
      this.lastSentMs = now;
      if (silentMs >= this.downAfterMs) {
        this.log(`heard again after ${(silentMs / 1000).toFixed(0)} s of silence: the control plane may have restarted this host's VMs elsewhere`);
        this.onSilenceEnded(silentMs);
      }
      this.stats.sent++;
      this.stats.lastSentAt = new Date().toISOString();
      if (this.stats.lastError !== undefined) this.log('heartbeats reach the control plane again');
      delete this.stats.lastError;
      return true;
    } catch (error) {
      this.stats.failed++;
      // One line when they start failing, not one per try.
      if (this.stats.lastError === undefined)
        this.log(`heartbeat failed (the control plane will mark this host suspect, then down): ${(error as Error).message}`);
      this.stats.lastError = (error as Error).message;
      return false;
    }
  }
}
