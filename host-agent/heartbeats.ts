import { HEARTBEAT_INTERVAL_MS } from '#events/host-health.ts';

/** What `/status` shows of the agent's heartbeats. */
export interface HeartbeatStats {
  sent: number;
  failed: number;
  lastSentAt?: string;
  lastError?: string;
}

/**
 * Tells the control plane, every few seconds, that this host's agent is alive: the one write per
 * host per interval its health is measured from. A failed heartbeat is only counted: the next one
 * comes at the next interval anyway, and a control plane that hears none marks the host suspect.
 */
export class Heartbeats {
  readonly stats: HeartbeatStats = { sent: 0, failed: 0 };
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: () => Promise<void>,
    private readonly log: (message: string) => void,
    private readonly intervalMs = HEARTBEAT_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    void this.beat();
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async beat(): Promise<void> {
    try {
      await this.send();
      this.stats.sent++;
      this.stats.lastSentAt = new Date().toISOString();
      if (this.stats.lastError !== undefined) this.log('heartbeats reach the control plane again');
      delete this.stats.lastError;
    } catch (error) {
      this.stats.failed++;
      // One line when they start failing, not one per interval.
      if (this.stats.lastError === undefined)
        this.log(`heartbeat failed (the control plane will mark this host suspect, then down): ${(error as Error).message}`);
      this.stats.lastError = (error as Error).message;
    }
  }
}
