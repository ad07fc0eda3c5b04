import type { ReportVmStateRequest } from '#events/vm-lifecycle.ts';

/**
 * Sends what the agent sees of its VMs to the control plane: the latest report of each VM, once;
 * a newer one replaces one not yet sent, and one that fails is sent again with back-off (the
 * control plane ignores a report older than one it holds, so a late retry cannot go back).
 * A report carries the console only when it changed, so a report that replaces one with a console
 * takes that console along: otherwise the new guest's first console would never reach the API.
 */
export class VmStateReports {
  private readonly pending = new Map<string, ReportVmStateRequest>();
  private sending: Promise<void> | undefined;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly stats = { sent: 0, failed: 0 };

  constructor(
    private readonly send: (vmId: string, report: ReportVmStateRequest) => Promise<void>,
    private readonly log: (message: string) => void,
  ) {}

  record(vmId: string, report: ReportVmStateRequest): void {
    this.keepLatest(vmId, report);
    this.flush();
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Resolves once everything recorded so far was sent or failed once. */
  async settled(): Promise<void> {
    while (this.sending) await this.sending;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.settled();
    this.stopped = true;
  }

  /** Keeps the newer of the pending report and this one, with the newest console either carried. */
  private keepLatest(vmId: string, report: ReportVmStateRequest): void {
    const before = this.pending.get(vmId);
    if (!before) {
      this.pending.set(vmId, report);
      return;
    }
    const [older, newer] = before.observedAt > report.observedAt ? [report, before] : [before, report];
    this.pending.set(vmId, newer.console === undefined && older.console !== undefined ? { ...newer, console: older.console } : newer);
  }

  private flush(): void {
    if (this.sending || this.stopped || this.timer) return;
    this.sending = this.drain().finally(() => (this.sending = undefined));
  }

  private async drain(): Promise<void> {
    while (this.pending.size > 0 && !this.stopped) {
      const batch = [...this.pending];
      this.pending.clear();
      const results = await Promise.allSettled(batch.map(([vmId, report]) => this.send(vmId, report)));
      let failedNow = 0;
      for (const [index, result] of results.entries()) {
        if (result.status === 'fulfilled') {
          this.stats.sent++;
          continue;
        }
        const [vmId, report] = batch[index]!;
        failedNow++;
        this.stats.failed++;
        // Unless a newer report came meanwhile, this one goes again (its console goes either way).
        this.keepLatest(vmId, report);
        if (this.failures === 0) this.log(`VM state report for ${vmId} failed (${(result.reason as Error).message}); retrying`);
      }
      if (failedNow === 0) {
        this.failures = 0;
        continue;
      }
      this.failures++;
      const delay = Math.min(30_000, 250 * 2 ** Math.min(this.failures, 7));
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.flush();
      }, delay);
      this.timer.unref();
      return;
    }
  }
}
