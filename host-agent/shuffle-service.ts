import { appendFile, mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { DeleteMessageBatchCommand, QueueDoesNotExist, ReceiveMessageCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { ShuffleChunkMessage, type HostShuffleJob, type ShuffleRecord, type ShuffleWorkerReport } from '#events/shuffle.ts';
import { workerFor } from './partitioner.ts';
import { SpillFile } from './spill-file.ts';

/** Records per message: well under SQS's 256 KiB for typical records, few enough messages per batch. */
const RECORDS_PER_CHUNK = 200;
const MAX_CHUNK_BYTES = 200 * 1024;

export class ShuffleError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** One local worker's partitions of a job: spilled to a file as they arrive, never held in memory. */
interface Inbox {
  job: HostShuffleJob;
  vmId: string;
  spill: SpillFile;
  /** Chunks that arrived again (SQS delivers at least once) and were not stored again. */
  duplicates: number;
  stopped: boolean;
}

/** What one local worker has sent in a job: each batch once, by the VM's batch id. */
interface Outbox {
  file: string;
  batches: Map<string, number>;
  /** Batches being sent now: the same batch sent again meanwhile waits for this one, and is not counted twice. */
  sending: Map<string, Promise<{ accepted: number; duplicate: boolean }>>;
  sent: number;
  closed: boolean;
}

/**
 * The host's side of the shuffle service. Records a worker VM sends through its bridge go, by the
 * hash of their key, to the inbound queue of the worker that owns the key's partition, in chunks
 * whose id names the VM's batch; a batch sent again is recognised and not sent twice. The host of
 * each worker consumes that worker's queue, appends each chunk it has not seen to the worker's
 * spill file (the file, not memory, holds the partition, and tells on restart which chunks
 * arrived), deletes the messages, and the worker reads its records from its bridge by offset. The
 * host reports to the control plane what each local worker sent (once it closed) and received;
 * the job completes when the two totals match.
 */
export class ShuffleService {
  private jobs = new Map<string, HostShuffleJob>();
  private updating: Promise<void> = Promise.resolve();
  private readonly inboxes = new Map<string, Inbox>();
  private readonly outboxes = new Map<string, Promise<Outbox>>();
  private readonly reportTimers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly dir: string,
    private readonly sqs: SQSClient,
    private readonly report: (jobId: string, vmId: string, report: ShuffleWorkerReport) => Promise<void>,
    private readonly log: (message: string) => void,
  ) {}

  /** Takes the jobs the host's VMs work in: starts consuming new local workers' queues, drops what ended. One update at a time. */
  update(jobs: readonly HostShuffleJob[], localVmIds: ReadonlySet<string>): Promise<void> {
    const run = this.updating.then(() => this.apply(jobs, localVmIds));
    this.updating = run.catch(() => {});
    return run;
  }

  private async apply(jobs: readonly HostShuffleJob[], localVmIds: ReadonlySet<string>): Promise<void> {
    this.jobs = new Map(jobs.map((job) => [job.jobId, job]));
    const wanted = new Map<string, { job: HostShuffleJob; vmId: string }>(
      jobs.flatMap((job) => job.workers.filter((vmId) => localVmIds.has(vmId)).map((vmId) => [`${job.jobId}/${vmId}`, { job, vmId }] as const)),
    );
    for (const [key, inbox] of this.inboxes) {
      if (wanted.has(key)) continue;
      inbox.stopped = true;
      this.inboxes.delete(key);
      this.outboxes.delete(key);
      if (!this.jobs.has(inbox.job.jobId)) await rm(path.join(this.dir, inbox.job.jobId), { recursive: true, force: true });
    }
    for (const [key, { job, vmId }] of wanted) {
      if (this.inboxes.has(key)) continue;
      const inbox = await this.openInbox(job, vmId);
      this.inboxes.set(key, inbox);
      void this.consume(inbox);
    }
  }

  /** Stops serving workers that left this host, with the jobs already known: a VM that left needs nothing fetched. */
  keepOnly(localVmIds: ReadonlySet<string>): Promise<void> {
    return this.update([...this.jobs.values()], localVmIds);
  }

  stop(): void {
    for (const inbox of this.inboxes.values()) inbox.stopped = true;
    for (const timer of this.reportTimers.values()) clearTimeout(timer);
  }

  stats() {
    return Object.fromEntries(
      [...this.inboxes].map(([key, inbox]) => [
        key,
        { received: inbox.spill.records, chunks: inbox.spill.chunkCount, duplicates: inbox.duplicates, spillBytes: inbox.spill.bytes },
      ]),
    );
  }

  /** A worker VM's batch of records: partitioned and sent on, once per batch id. */
  async send(vmId: string, jobId: string, batchId: string, records: readonly ShuffleRecord[]): Promise<{ accepted: number; duplicate: boolean }> {
    const job = this.workerJob(jobId, vmId);
    const outbox = await this.outboxOf(job, vmId);
    if (outbox.closed) throw new ShuffleError(409, `vm ${vmId} has closed its side of shuffle job ${jobId}`);
    const known = outbox.batches.get(batchId);
    if (known !== undefined) return { accepted: known, duplicate: true };
    const inFlight = outbox.sending.get(batchId);
    if (inFlight) return { ...(await inFlight), duplicate: true };
    const sending = this.sendBatch(job, outbox, vmId, batchId, records);
    outbox.sending.set(batchId, sending);
    try {
      return await sending;
    } finally {
      outbox.sending.delete(batchId);
    }
  }

  private async sendBatch(job: HostShuffleJob, outbox: Outbox, vmId: string, batchId: string, records: readonly ShuffleRecord[]) {
    const byTarget = new Map<string, ShuffleRecord[]>();
    for (const record of records) {
      const target = workerFor(job, record.key);
      const list = byTarget.get(target);
      if (list) list.push(record);
      else byTarget.set(target, [record]);
    }
    await Promise.all([...byTarget].map(([target, targetRecords]) => this.sendChunks(job, `${vmId}/${batchId}/${target}`, target, targetRecords)));
    await appendFile(outbox.file, `${batchId} ${records.length}\n`);
    outbox.batches.set(batchId, records.length);
    outbox.sent += records.length;
    return { accepted: records.length, duplicate: false };
  }

  /** The worker has sent everything: its count goes to the control plane, and nothing more is taken. */
  async close(vmId: string, jobId: string): Promise<{ sent: number }> {
    const job = this.workerJob(jobId, vmId);
    const outbox = await this.outboxOf(job, vmId);
    // A batch still being sent counts: close after it.
    await Promise.allSettled(outbox.sending.values());
    if (!outbox.closed) {
      await appendFile(outbox.file, '#closed\n');
      outbox.closed = true;
    }
    await this.reportNow(jobId, vmId);
    return { sent: outbox.sent };
  }

  /** Records of the worker's partitions from `offset` on, at most `limit`, read from its spill file. */
  async read(vmId: string, jobId: string, offset: number, limit: number): Promise<{ records: ShuffleRecord[]; nextOffset: number; received: number }> {
    this.workerJob(jobId, vmId);
    const inbox = this.inboxes.get(`${jobId}/${vmId}`);
    if (!inbox) throw new ShuffleError(404, `no partitions of shuffle job ${jobId} are held for vm ${vmId} on this host`);
    const records = await inbox.spill.read(offset, limit);
    return { records, nextOffset: offset + records.length, received: inbox.spill.records };
  }

  private workerJob(jobId: string, vmId: string): HostShuffleJob {
    const job = this.jobs.get(jobId);
    if (!job?.workers.includes(vmId))
      throw new ShuffleError(404, `vm ${vmId} is not a worker of shuffle job ${jobId} (or its host has not heard of the job yet)`);
    return job;
  }

  private async sendChunks(job: HostShuffleJob, prefix: string, target: string, records: ShuffleRecord[]) {
    const chunks: ShuffleChunkMessage[] = [];
    let current: ShuffleRecord[] = [];
    let bytes = 0;
    for (const record of records) {
      const size = Buffer.byteLength(record.key) + Buffer.byteLength(record.value) + 32;
      if (current.length > 0 && (current.length >= RECORDS_PER_CHUNK || bytes + size > MAX_CHUNK_BYTES)) {
        chunks.push({ jobId: job.jobId, targetVmId: target, chunkId: `${prefix}/${chunks.length}`, records: current });
        current = [];
        bytes = 0;
      }
      current.push(record);
      bytes += size;
    }
    if (current.length > 0) chunks.push({ jobId: job.jobId, targetVmId: target, chunkId: `${prefix}/${chunks.length}`, records: current });
    for (let i = 0; i < chunks.length; i += 10) {
      const batch = chunks.slice(i, i + 10);
      const { Failed = [] } = await this.sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: job.queueUrls[target]!,
          Entries: batch.map((chunk, index) => ({ Id: String(index), MessageBody: JSON.stringify(chunk) })),
        }),
      );
      if (Failed.length > 0)
        throw new ShuffleError(
          503,
          `the queue of worker ${target} refused ${Failed.length} chunk(s) (${Failed[0]?.Code}); send the batch again with the same id`,
        );
    }
  }

  private outboxOf(job: HostShuffleJob, vmId: string): Promise<Outbox> {
    const key = `${job.jobId}/${vmId}`;
    let outbox = this.outboxes.get(key);
    if (!outbox) {
      outbox = (async () => {
        const file = path.join(this.dir, job.jobId, `${vmId}.sent`);
        await mkdir(path.dirname(file), { recursive: true });
        const text = await readFile(file, 'utf8').catch(() => '');
        const batches = new Map<string, number>();
        let closed = false;
        for (const line of text.split('\n')) {
          if (line === '#closed') closed = true;
          const [batchId, count] = line.split(' ');
          if (batchId && count && !line.startsWith('#')) batches.set(batchId, Number(count));
        }
        return { file, batches, sending: new Map(), closed, sent: [...batches.values()].reduce((sum, count) => sum + count, 0) };
      })();
      this.outboxes.set(key, outbox);
    }
    return outbox;
  }

  private async openInbox(job: HostShuffleJob, vmId: string): Promise<Inbox> {
    return { job, vmId, spill: await SpillFile.open(path.join(this.dir, job.jobId, `${vmId}.records`)), duplicates: 0, stopped: false };
  }

  private async consume(inbox: Inbox) {
    const queueUrl = inbox.job.queueUrls[inbox.vmId]!;
    while (!inbox.stopped) {
      try {
        const { Messages = [] } = await this.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 5 }));
        if (inbox.stopped) return;
        for (const message of Messages) {
          const parsed = ShuffleChunkMessage.safeParse(safeJson(message.Body));
          if (!parsed.success || parsed.data.jobId !== inbox.job.jobId || parsed.data.targetVmId !== inbox.vmId) {
            this.log(`shuffle ${inbox.job.jobId}/${inbox.vmId}: dropped a malformed or misaddressed message ${message.MessageId}`);
            continue;
          }
          if (inbox.spill.has(parsed.data.chunkId)) inbox.duplicates++;
          else await inbox.spill.append(parsed.data.chunkId, parsed.data.records);
        }
        if (Messages.length > 0) {
          await this.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: Messages.map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle! })),
            }),
          );
          this.scheduleReport(inbox.job.jobId, inbox.vmId);
        }
      } catch (error) {
        if (error instanceof QueueDoesNotExist) return;
        this.log(`shuffle ${inbox.job.jobId}/${inbox.vmId}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  private scheduleReport(jobId: string, vmId: string) {
    const key = `${jobId}/${vmId}`;
    if (this.reportTimers.has(key)) return;
    this.reportTimers.set(
      key,
      setTimeout(() => {
        this.reportTimers.delete(key);
        void this.reportNow(jobId, vmId).catch((error: Error) => this.log(`shuffle report ${key}: ${error.message}`));
      }, 200),
    );
  }

  private async reportNow(jobId: string, vmId: string) {
    const job = this.jobs.get(jobId);
    if (!job) return;
    const outbox = await this.outboxOf(job, vmId);
    const received = this.inboxes.get(`${jobId}/${vmId}`)?.spill.records ?? 0;
    await this.report(jobId, vmId, { received, ...(outbox.closed ? { sent: outbox.sent, closed: true } : {}) });
  }
}

function safeJson(text: string | undefined): unknown {
  try {
    return JSON.parse(text ?? '');
  } catch {
    return undefined;
  }
}
