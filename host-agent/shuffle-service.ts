import { createWriteStream } from 'node:fs';
import { appendFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { DeleteMessageBatchCommand, QueueDoesNotExist, ReceiveMessageCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import {
  ShuffleChunkMessage,
  type HostShuffleJob,
  type ShuffleHandoffCheck,
  type ShuffleHandoffTicket,
  type ShuffleRecord,
  type ShuffleWorkerReport,
} from '#events/shuffle.ts';
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
  /** Absent while the worker's spill is on its way from the host it left (`from`). */
  spill?: SpillFile;
  from?: string;
  /** Resolves once the spill is here and its queue is consumed (or the inbox stopped first). */
  ready: Promise<void>;
  /** Chunks that arrived again (SQS delivers at least once) and were not stored again. */
  duplicates: number;
  stopped: boolean;
  /** Ends a fetch of the worker's spill, or (the agent stops) a receive that waits for messages. */
  abort: AbortController;
  /** The consuming loop: stopping waits for the chunks it has taken to be stored. */
  loop?: Promise<void>;
}

/** What the shuffle service asks the control plane when a worker moves between hosts. */
export interface ShuffleHandoffs {
  /** This host's id: a worker's spill held by another host is fetched from there. */
  hostId: string;
  /** For a worker that runs here now and whose spill another host holds: a ticket to fetch it. */
  ticket(jobId: string, vmId: string): Promise<ShuffleHandoffTicket>;
  /** For a spill held here: what the control plane says of a ticket a peer presented. */
  check(jobId: string, vmId: string, ticket: string, toHostId: string): Promise<ShuffleHandoffCheck>;
}

/** What one local worker has sent in a job: each batch once, by the VM's batch id. */
interface Outbox {
  file: string;
  batches: Map<string, number>;
  /** Batches being sent now: the same batch sent again meanwhile waits for this one, and is not counted twice. */
  sending: Map<string, Promise<{ accepted: number; duplicate: boolean }>>;
  sent: number;
  closed: boolean;
  /** The worker left this host and its spill is (being) handed to its new host: nothing more is taken here. */
  sealed?: boolean;
}

/** A take-over of a worker's spill waits at most this long before a worker's call is answered 503 (retry). */
const ARRIVAL_WAIT_MS = 20_000;

/**
 * The host's side of the shuffle service. Records a worker VM sends through its bridge go, by the
 * hash of their key, to the inbound queue of the worker that owns the key's partition, in chunks
 * whose id names the VM's batch; a batch sent again is recognised and not sent twice. The host of
 * each worker consumes that worker's queue, appends each chunk it has not seen to the worker's
 * spill file (the file, not memory, holds the partition, and tells on restart which chunks
 * arrived), deletes the messages, and the worker reads its records from its bridge by offset. The
 * host reports to the control plane what each local worker sent (once it closed) and received;
 * the job completes when the two totals match.
 *
 * A worker that moves to another host takes its spill along: the host it left stops consuming
 * its queue (chunks taken are stored first) and keeps the spill; its new host, told by the
 * control plane which host holds it, gets a ticket, fetches the spill and what the worker sent
 * from that host's peer listener (which checks the ticket with the control plane), makes them its
 * own (the same bytes: offsets the worker read mean the same), says it holds them now, and only
 * then consumes the queue, where records sent meanwhile waited; a chunk both saw is stored once.
 * The host it left deletes its copy once the control plane says the new one took it over.
 */
export class ShuffleService {
  private jobs = new Map<string, HostShuffleJob>();
  private updating: Promise<void> = Promise.resolve();
  private readonly inboxes = new Map<string, Inbox>();
  private readonly outboxes = new Map<string, Promise<Outbox>>();
  private readonly reportTimers = new Map<string, NodeJS.Timeout>();
  /** Workers that left with their spill still here, until their new host took it over. */
  private readonly held = new Map<string, { jobId: string; vmId: string }>();
  /** Spills handed out while this host still thought the worker ran here: not consumed again until it learns it left. */
  private readonly sealed = new Set<string>();
  /** Where this host's peer listener serves spills (reported with each worker, for its next host). */
  spillUrl: string | undefined;
  /** Peers' requests must come from the address their host registered (off when the listener is on loopback, for development). */
  checkPeerAddress = false;

  constructor(
    private readonly dir: string,
    private readonly sqs: SQSClient,
    private readonly report: (jobId: string, vmId: string, report: ShuffleWorkerReport) => Promise<void>,
    private readonly log: (message: string) => void,
    private readonly handoffs?: ShuffleHandoffs,
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
    for (const key of this.sealed) if (!wanted.has(key)) this.sealed.delete(key);
    for (const [key, inbox] of this.inboxes) {
      if (wanted.has(key)) continue;
      // The worker left this host, or its job ended: its spill stays for the worker's next host
      // until that host took it over; said at once, with where it is served. A job that is gone
      // (the report finds none) takes its files with it.
      await this.seal(key);
      if (!inbox.spill) continue;
      this.held.set(key, { jobId: inbox.job.jobId, vmId: inbox.vmId });
      await this.reportHeld(inbox.job.jobId, inbox.vmId, inbox.spill).catch(async (error: Error & { status?: number }) => {
        if (error.status !== 404) return this.log(`shuffle report ${key}: ${error.message}`);
        this.held.delete(key);
        await rm(path.join(this.dir, inbox.job.jobId), { recursive: true, force: true });
      });
    }
    for (const [key, { job, vmId }] of wanted) {
      if (this.inboxes.has(key) || this.sealed.has(key)) continue;
      this.held.delete(key);
      const holder = job.spillHosts?.[vmId];
      const inbox: Inbox = { job, vmId, duplicates: 0, stopped: false, abort: new AbortController(), ready: Promise.resolve() };
      this.inboxes.set(key, inbox);
      if (this.handoffs && holder !== undefined && holder !== this.handoffs.hostId) {
        // The worker moved here: its spill is fetched from the host that holds it before its queue is read.
        inbox.from = holder;
        inbox.ready = this.takeOver(inbox, this.handoffs);
      } else {
        inbox.spill = await SpillFile.open(this.recordsFile(job.jobId, vmId));
        inbox.loop = this.consume(inbox);
      }
    }
  }

  /** Stops serving workers that left this host, with the jobs already known: a VM that left needs nothing fetched. */
  keepOnly(localVmIds: ReadonlySet<string>): Promise<void> {
    return this.update([...this.jobs.values()], localVmIds);
  }

  stop(): void {
    for (const inbox of this.inboxes.values()) {
      inbox.stopped = true;
      inbox.abort.abort();
    }
    for (const timer of this.reportTimers.values()) clearTimeout(timer);
  }

  stats() {
    return Object.fromEntries(
      [...this.inboxes].map(([key, inbox]) => [
        key,
        inbox.spill
          ? { received: inbox.spill.records, chunks: inbox.spill.chunkCount, duplicates: inbox.duplicates, spillBytes: inbox.spill.bytes }
          : { arrivingFrom: inbox.from },
      ]),
    );
  }

  /** Spills of workers that left, kept here until their new host takes them over. */
  heldSpills(): string[] {
    return [...this.held.keys()];
  }

  /** A worker VM's batch of records: partitioned and sent on, once per batch id. */
  async send(vmId: string, jobId: string, batchId: string, records: readonly ShuffleRecord[]): Promise<{ accepted: number; duplicate: boolean }> {
    const job = this.workerJob(jobId, vmId);
    const outbox = await this.outboxOf(job, vmId);
    if (outbox.sealed) throw new ShuffleError(503, `vm ${vmId} has moved to another host; send the batch again there`);
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
    if (outbox.sealed) throw new ShuffleError(503, `vm ${vmId} has moved to another host; close again there`);
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
    if (!inbox.spill) throw new ShuffleError(503, `the partitions of vm ${vmId} are on their way from host ${inbox.from}; retry shortly`);
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

  private async outboxOf(job: HostShuffleJob, vmId: string): Promise<Outbox> {
    const key = `${job.jobId}/${vmId}`;
    // Its spill (and what it sent) is handed, or being handed, to its new host: nothing more is taken here.
    if (this.sealed.has(key) || this.held.has(key)) throw new ShuffleError(503, `vm ${vmId} has moved to another host; call again there`);
    const inbox = this.inboxes.get(key);
    if (inbox && !inbox.spill) {
      // What the worker sent from the host it left comes with its spill: its batches wait for it.
      let timer: NodeJS.Timeout | undefined;
      const waited = await Promise.race([
        inbox.ready.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), ARRIVAL_WAIT_MS);
        }),
      ]).finally(() => clearTimeout(timer));
      if (!waited || !inbox.spill)
        throw new ShuffleError(503, `the shuffle state of vm ${vmId} is on its way from host ${inbox.from}; send the batch again shortly`);
    }
    return this.loadOutbox(job.jobId, vmId);
  }

  private loadOutbox(jobId: string, vmId: string): Promise<Outbox> {
    const key = `${jobId}/${vmId}`;
    let outbox = this.outboxes.get(key);
    if (!outbox) {
      outbox = (async () => {
        const file = this.sentFile(jobId, vmId);
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

  private async consume(inbox: Inbox) {
    const queueUrl = inbox.job.queueUrls[inbox.vmId]!;
    const spill = inbox.spill!;
    while (!inbox.stopped) {
      try {
        const { Messages = [] } = await this.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 5 }), {
          abortSignal: inbox.abort.signal,
        });
        // Taken even if the inbox stops meanwhile: stopping waits for them to be stored.
        for (const message of Messages) {
          const parsed = ShuffleChunkMessage.safeParse(safeJson(message.Body));
          if (!parsed.success || parsed.data.jobId !== inbox.job.jobId || parsed.data.targetVmId !== inbox.vmId) {
            this.log(`shuffle ${inbox.job.jobId}/${inbox.vmId}: dropped a malformed or misaddressed message ${message.MessageId}`);
            continue;
          }
          if (spill.has(parsed.data.chunkId)) inbox.duplicates++;
          else await spill.append(parsed.data.chunkId, parsed.data.records);
        }
        if (Messages.length > 0) {
          this.scheduleReport(inbox.job.jobId, inbox.vmId);
          await this.sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl: queueUrl,
              Entries: Messages.map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle! })),
            }),
          );
        }
      } catch (error) {
        // Not deleted (or not received): the queue gives them again, to whichever host consumes it then; stored once by chunk id.
        if (inbox.stopped || error instanceof QueueDoesNotExist) return;
        this.log(`shuffle ${inbox.job.jobId}/${inbox.vmId}: ${(error as Error).message}`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  /**
   * Stops taking anything for a worker here (it left, or its new host asks for its spill before
   * this host heard it left): its queue is no longer consumed, chunks already taken are stored,
   * batches being sent finish and no more are taken. The spill and what was sent are final then.
   */
  private async seal(key: string): Promise<void> {
    const inbox = this.inboxes.get(key);
    if (inbox) {
      inbox.stopped = true;
      // A receive under way ends by itself (5 s at most) and what it took is stored: cut short, the
      // messages it took would stay invisible for the queue's visibility timeout (60 s). A fetch
      // from the host the worker left is cut short.
      if (!inbox.loop) inbox.abort.abort();
      await inbox.loop;
      await inbox.ready.catch(() => {});
      this.inboxes.delete(key);
    }
    const outbox = await this.outboxes.get(key)?.catch(() => undefined);
    if (outbox) {
      outbox.sealed = true;
      await Promise.allSettled(outbox.sending.values());
    }
    this.outboxes.delete(key);
    clearTimeout(this.reportTimers.get(key));
    this.reportTimers.delete(key);
  }

  /**
   * The worker runs here now and another host holds its spill: a ticket from the control plane,
   * the spill and what the worker sent fetched from that host (into files of their own, then put
   * in place), the take-over said to the control plane, and only then the queue consumed. Tried
   * again until it works or the worker leaves; the host it left is told it may delete its copy.
   */
  private async takeOver(inbox: Inbox, handoffs: ShuffleHandoffs): Promise<void> {
    const { job, vmId } = inbox;
    const records = this.recordsFile(job.jobId, vmId);
    const sent = this.sentFile(job.jobId, vmId);
    for (let attempt = 0; !inbox.stopped; attempt++) {
      try {
        const ticket = await handoffs.ticket(job.jobId, vmId);
        const base = `${ticket.spillUrl.replace(/\/$/, '')}/v1/shuffle/${job.jobId}/workers/${vmId}`;
        const headers = { authorization: `Bearer ${ticket.ticket}`, 'x-stratoplane-host': handoffs.hostId };
        await mkdir(path.dirname(records), { recursive: true });
        await download(`${base}/records`, headers, `${records}.incoming`, inbox.abort.signal);
        await download(`${base}/sent`, headers, `${sent}.incoming`, inbox.abort.signal);
        if (inbox.stopped) return;
        await rename(`${records}.incoming`, records);
        await rename(`${sent}.incoming`, sent);
        const spill = await SpillFile.open(records);
        this.outboxes.delete(`${job.jobId}/${vmId}`);
        const outbox = await this.loadOutbox(job.jobId, vmId);
        await this.report(job.jobId, vmId, {
          received: spill.records,
          ...(outbox.closed ? { sent: outbox.sent, closed: true } : {}),
          ...(this.spillUrl ? { spillUrl: this.spillUrl } : {}),
          handoffFrom: ticket.fromHostId,
        });
        this.log(
          `shuffle ${job.jobId}/${vmId}: took over its spill from host ${ticket.fromHostId} (${spill.records} records, ${outbox.batches.size} batches sent)`,
        );
        // Held here now, even if the worker left meanwhile (its next host fetches it from here).
        inbox.spill = spill;
        inbox.from = undefined;
        if (!inbox.stopped) inbox.loop = this.consume(inbox);
        // The host it left may delete its copy now; if it does not hear it, its copy waits (nothing is lost).
        void fetch(base, { method: 'DELETE', headers, signal: AbortSignal.timeout(10_000) })
          .then((response) => {
            if (!response.ok) this.log(`shuffle ${job.jobId}/${vmId}: host ${ticket.fromHostId} did not delete its copy (${response.status})`);
          })
          .catch((error: Error) => this.log(`shuffle ${job.jobId}/${vmId}: host ${ticket.fromHostId} not told to delete its copy: ${error.message}`));
        return;
      } catch (error) {
        const delay = Math.min(5_000, 250 * 2 ** Math.min(attempt, 5));
        this.log(`shuffle ${job.jobId}/${vmId}: its spill is not here yet from host ${inbox.from} (${(error as Error).message}); again in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /**
   * A peer asks for a worker's spill (`records`) or what it sent (`sent`), with a ticket: the
   * control plane must say the ticket is good (issued to the host the worker runs on now, which
   * presents it) and the requests must come from that host's address (unless the listener is on
   * loopback). The spill is sealed first: it does not change once handed out.
   */
  async handOut(jobId: string, vmId: string, part: 'records' | 'sent', ticket: string, toHostId: string, remoteAddress: string | undefined) {
    const check = await this.checkTicket(jobId, vmId, ticket, toHostId, remoteAddress);
    if (check.state !== 'pending') throw new ShuffleError(409, `host ${toHostId} has taken the spill of vm ${vmId} over already`);
    const key = `${jobId}/${vmId}`;
    if (this.inboxes.has(key)) {
      // Asked before this host heard the worker left: sealed now, and not consumed again while it still looks local.
      this.sealed.add(key);
      await this.seal(key);
    }
    const file = part === 'records' ? this.recordsFile(jobId, vmId) : this.sentFile(jobId, vmId);
    // The spill cut to its last whole chunk (one torn by a crash is not handed on).
    const bytes =
      part === 'records'
        ? (await SpillFile.open(file)).bytes
        : await stat(file).then(
            (info) => info.size,
            () => 0,
          );
    if (part === 'sent' && bytes === 0) await appendFile(file, '');
    this.held.set(key, { jobId, vmId });
    return { file, bytes };
  }

  /** The worker's new host took its spill over (the control plane says so): the copy here goes. */
  async handedOff(jobId: string, vmId: string, ticket: string, toHostId: string, remoteAddress: string | undefined): Promise<void> {
    const check = await this.checkTicket(jobId, vmId, ticket, toHostId, remoteAddress);
    if (check.state !== 'complete') throw new ShuffleError(409, `host ${toHostId} has not taken the spill of vm ${vmId} over yet`);
    const key = `${jobId}/${vmId}`;
    if (this.inboxes.has(key)) return;
    this.held.delete(key);
    await rm(this.recordsFile(jobId, vmId), { force: true });
    await rm(this.sentFile(jobId, vmId), { force: true });
    this.log(`shuffle ${key}: spill deleted, host ${toHostId} holds it now`);
  }

  private async checkTicket(jobId: string, vmId: string, ticket: string, toHostId: string, remoteAddress: string | undefined) {
    if (!this.handoffs) throw new ShuffleError(404, 'this host hands no spill over');
    let check: ShuffleHandoffCheck;
    try {
      check = await this.handoffs.check(jobId, vmId, ticket, toHostId);
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status !== undefined && status < 500) throw new ShuffleError(403, (error as Error).message);
      throw new ShuffleError(503, `the control plane could not check the ticket: ${(error as Error).message}`);
    }
    if (this.checkPeerAddress && !sameAddress(remoteAddress, check.toAddress))
      throw new ShuffleError(403, `host ${toHostId}'s requests come from ${check.toAddress}, not ${remoteAddress}`);
    return check;
  }

  private recordsFile(jobId: string, vmId: string) {
    return path.join(this.dir, jobId, `${vmId}.records`);
  }

  private sentFile(jobId: string, vmId: string) {
    return path.join(this.dir, jobId, `${vmId}.sent`);
  }

  /** What this host holds of a worker that left it: reported once more, with where it is served. */
  private async reportHeld(jobId: string, vmId: string, spill: SpillFile) {
    const outbox = await this.loadOutbox(jobId, vmId);
    this.outboxes.delete(`${jobId}/${vmId}`);
    await this.report(jobId, vmId, {
      received: spill.records,
      ...(outbox.closed ? { sent: outbox.sent, closed: true } : {}),
      ...(this.spillUrl ? { spillUrl: this.spillUrl } : {}),
    });
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
    const spill = this.inboxes.get(`${jobId}/${vmId}`)?.spill;
    // A worker whose spill is on its way here reports once it arrived; one that left, when it left.
    if (!job || !spill) return;
    const outbox = await this.outboxOf(job, vmId);
    await this.report(jobId, vmId, {
      received: spill.records,
      ...(outbox.closed ? { sent: outbox.sent, closed: true } : {}),
      ...(this.spillUrl ? { spillUrl: this.spillUrl } : {}),
    });
  }
}

/** Whether a socket's remote address is this IPv4 address (also as IPv4-mapped IPv6). */
export function sameAddress(remote: string | undefined, expected: string): boolean {
  if (!remote) return false;
  return (remote.startsWith('::ffff:') ? remote.slice(7) : remote) === expected;
}

/** Fetches a file a peer serves into `file` (replaced); throws on any answer but 200, with the peer's reason. */
async function download(url: string, headers: Record<string, string>, file: string, stop: AbortSignal): Promise<void> {
  const response = await fetch(url, { headers, signal: AbortSignal.any([stop, AbortSignal.timeout(10 * 60_000)]) });
  if (!response.ok || !response.body) throw new Error(`${url} answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
  await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), createWriteStream(file));
}

function safeJson(text: string | undefined): unknown {
  try {
    return JSON.parse(text ?? '');
  } catch {
    return undefined;
  }
}
