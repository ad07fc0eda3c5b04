/** One VM's endpoint version as this agent holds it. */
export interface EndpointAck {
  vmId: string;
  version: number;
}

export interface EndpointAcksOptions {
  /** How long changes gather before they go out together. */
  flushMs: number;
  /** Acknowledgements per request (the API takes up to 100). */
  batchSize: number;
  /** Requests in flight at once. */
  parallelRequests: number;
  /** What is still held is acknowledged again after this, long before the control plane forgets it (30 days). */
  reaffirmAfterMs: number;
  /** First wait after a failed send; it doubles up to 30 s. */
  retryMs: number;
}

const defaults: EndpointAcksOptions = { flushMs: 100, batchSize: 100, parallelRequests: 4, reaffirmAfterMs: 7 * 86_400_000, retryMs: 500 };

/**
 * Tells the control plane which endpoint versions this agent holds, so a migration's progress is
 * visible (`GET /vms/{vmId}/convergence`). Changes applied within one flush interval go out in
 * one batch, a VM's latest version only; what fails to go out is sent again later, unless a newer
 * version of the same VM replaced it meanwhile.
 */
export class EndpointAcks {
  private readonly options: EndpointAcksOptions;
  private readonly pending = new Map<string, number>();
  /** What the control plane has acknowledged receiving, and when. */
  private readonly sent = new Map<string, { version: number; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private stopped = false;
  readonly stats = { acksSent: 0, requests: 0, failedRequests: 0 };

  constructor(
    private readonly send: (acks: EndpointAck[]) => Promise<void>,
    private readonly log: (message: string) => void,
    options: Partial<EndpointAcksOptions> = {},
  ) {
    this.options = { ...defaults, ...options };
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** A version the agent just applied. */
  record(vmId: string, version: number): void {
    if ((this.pending.get(vmId) ?? 0) >= version || (this.sent.get(vmId)?.version ?? 0) >= version) return;
    this.pending.set(vmId, version);
    this.schedule(this.options.flushMs);
  }

  /** Everything the agent holds now: acknowledges again what was last acknowledged long ago, and forgets VMs no longer held. */
  reaffirm(held: EndpointAck[], now = Date.now()): void {
    const heldIds = new Set<string>();
    for (const { vmId, version } of held) {
      heldIds.add(vmId);
      const sent = this.sent.get(vmId);
      if (!sent || sent.version < version || now - sent.at >= this.options.reaffirmAfterMs) this.keepPending(vmId, version);
    }
    for (const vmId of this.sent.keys()) if (!heldIds.has(vmId)) this.sent.delete(vmId);
    if (this.pending.size > 0) this.schedule(this.options.flushMs);
  }

  /** Sends what is pending now; resolves when that attempt is over. */
  flush(): Promise<void> {
    this.flushing ??= this.sendPending().finally(() => {
      this.flushing = undefined;
      if (this.pending.size > 0) this.schedule(this.failures > 0 ? Math.min(30_000, this.options.retryMs * 2 ** (this.failures - 1)) : 0);
    });
    return this.flushing;
  }

  /** Stops sending after one last attempt at what is pending. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    await this.flush();
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Keeps a VM's highest version pending. */
  private keepPending(vmId: string, version: number): void {
    if ((this.pending.get(vmId) ?? 0) < version) this.pending.set(vmId, version);
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  private async sendPending(): Promise<void> {
    const taken = [...this.pending].map(([vmId, version]) => ({ vmId, version }));
    this.pending.clear();
    const batches: EndpointAck[][] = [];
    for (let i = 0; i < taken.length; i += this.options.batchSize) batches.push(taken.slice(i, i + this.options.batchSize));
    let failed = false;
    const worker = async () => {
      for (let batch = batches.shift(); batch; batch = batches.shift()) {
        this.stats.requests++;
        try {
          await this.send(batch);
        } catch (error) {
          this.stats.failedRequests++;
          if (!failed) this.log(`acknowledging ${batch.length} endpoint version(s) failed (${(error as Error).message}); will retry`);
          failed = true;
          for (const { vmId, version } of batch) this.keepPending(vmId, version);
          continue;
        }
        const at = Date.now();
        for (const { vmId, version } of batch) if ((this.sent.get(vmId)?.version ?? 0) <= version) this.sent.set(vmId, { version, at });
        this.stats.acksSent += batch.length;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.parallelRequests, batches.length) }, worker));
    this.failures = failed ? this.failures + 1 : 0;
  }
}
