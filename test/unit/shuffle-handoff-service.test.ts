import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { afterEach, describe, expect, it } from 'vitest';
import type { HostShuffleJob, ShuffleRecord, ShuffleWorkerReport } from '#events/shuffle.ts';
import { judgeHandoffTicket, ticketHash } from '../../functions/shuffle/shuffle-handoffs.ts';
import type { ShuffleWorkerItem } from '../../functions/shuffle/shuffle-jobs.ts';
import { workerFor } from '../../host-agent/partitioner.ts';
import { ShufflePeerServer } from '../../host-agent/shuffle-peers.ts';
import { ShuffleService } from '../../host-agent/shuffle-service.ts';

/** Queues in memory, as SQS behaves for the shuffle service: a received message is invisible for a while, deleted by its receipt. */
function fakeSqs() {
  const queues = new Map<string, { id: string; body: string; invisibleUntil: number }[]>();
  const sqs = {
    async send(command: unknown, options?: { abortSignal?: AbortSignal }) {
      if (command instanceof SendMessageBatchCommand) {
        const queue = queues.get(command.input.QueueUrl!) ?? [];
        queues.set(command.input.QueueUrl!, queue);
        for (const entry of command.input.Entries!) queue.push({ id: randomBytes(6).toString('hex'), body: entry.MessageBody!, invisibleUntil: 0 });
        return { Failed: [] };
      }
      if (command instanceof ReceiveMessageCommand) {
        const visible = (queues.get(command.input.QueueUrl!) ?? []).filter((message) => message.invisibleUntil <= Date.now()).slice(0, 10);
        if (visible.length === 0) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          if (options?.abortSignal?.aborted) throw new Error('aborted');
        }
        for (const message of visible) message.invisibleUntil = Date.now() + 60_000;
        return { Messages: visible.map((message) => ({ MessageId: message.id, ReceiptHandle: message.id, Body: message.body })) };
      }
      if (command instanceof DeleteMessageBatchCommand) {
        const receipts = new Set(command.input.Entries!.map((entry) => entry.ReceiptHandle));
        const queue = queues.get(command.input.QueueUrl!) ?? [];
        queues.set(
          command.input.QueueUrl!,
          queue.filter((message) => !receipts.has(message.id)),
        );
        return {};
      }
      throw new Error(`unexpected command ${(command as object).constructor.name}`);
    },
  };
  return sqs as unknown as SQSClient;
}

/** The control plane's part, in memory: who runs each VM, who holds each spill, the tickets (by digest, judged as the API judges them). */
function fakeControlPlane(job: HostShuffleJob, vmHosts: Record<string, string>) {
  const workers = new Map<string, ShuffleWorkerItem>(
    job.workers.map((vmId) => [vmId, { kind: 'shuffle-worker', jobId: job.jobId, vmId, hostId: vmHosts[vmId]!, received: 0 }]),
  );
  return {
    vmHosts,
    workers,
    report(hostId: string, vmId: string, report: ShuffleWorkerReport) {
      const worker = workers.get(vmId)!;
      if (report.handoffFrom) {
        if (worker.hostId !== report.handoffFrom || worker.handoffTo !== hostId || vmHosts[vmId] !== hostId)
          throw Object.assign(new Error('409'), { status: 409 });
        Object.assign(worker, { hostId, previousHostId: report.handoffFrom });
      } else if (worker.hostId !== hostId) throw Object.assign(new Error('holder only'), { status: 409 });
      Object.assign(worker, { received: report.received, sent: report.sent, closed: report.closed, spillUrl: report.spillUrl ?? worker.spillUrl });
    },
    handoffsFor(hostId: string) {
      return {
        hostId,
        ticket: async (_jobId: string, vmId: string) => {
          const worker = workers.get(vmId)!;
          if (vmHosts[vmId] !== hostId || worker.hostId === hostId || !worker.spillUrl) throw Object.assign(new Error('no ticket'), { status: 409 });
          const ticket = randomBytes(32).toString('base64url');
          Object.assign(worker, { handoffHash: ticketHash(ticket), handoffTo: hostId, handoffExpiresAt: new Date(Date.now() + 600_000).toISOString() });
          return { jobId: job.jobId, vmId, fromHostId: worker.hostId, spillUrl: worker.spillUrl, ticket, expiresAt: worker.handoffExpiresAt! };
        },
        check: async (_jobId: string, vmId: string, ticket: string, toHostId: string) => {
          const verdict = judgeHandoffTicket({ hostId, vmId, toHostId, ticket, now: new Date(), job, worker: workers.get(vmId), vmHostId: vmHosts[vmId] });
          if ('refused' in verdict) throw Object.assign(new Error(verdict.refused), { status: 403 });
          return { state: verdict.state, toHostId, toAddress: '127.0.0.1' };
        },
      };
    },
  };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a shuffle worker moving between hosts', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function host(hostId: string, sqs: SQSClient, plane: ReturnType<typeof fakeControlPlane>) {
    const dir = mkdtempSync(path.join(tmpdir(), `shuffle-${hostId}-`));
    const service = new ShuffleService(
      dir,
      sqs,
      async (_jobId, vmId, report) => plane.report(hostId, vmId, report),
      () => {},
      plane.handoffsFor(hostId),
    );
    const peers = new ShufflePeerServer(service, () => {});
    const { url } = await peers.listen('127.0.0.1', 0);
    service.spillUrl = url;
    service.checkPeerAddress = true;
    cleanups.push(
      () => service.stop(),
      () => peers.close(),
    );
    return { service, dir, url };
  }

  const batch = (name: string, number: number): ShuffleRecord[] =>
    Array.from({ length: 50 }, (_, i) => ({ key: `key-${(number * 7 + i) % 20}`, value: `${name}-${number}-${i}` }));
  async function readAll(service: ShuffleService, vmId: string, jobId: string) {
    const records: ShuffleRecord[] = [];
    for (let offset = 0; ; ) {
      const page = await service.read(vmId, jobId, offset, 37);
      if (page.records.length === 0) return records;
      records.push(...page.records);
      offset = page.nextOffset;
    }
  }

  it('hands the spill and the batches sent to the new host, keeps records sent meanwhile, and the old host deletes its copy', async () => {
    const job: HostShuffleJob = { jobId: 'shuf-1', partitions: 4, workers: ['vm-a', 'vm-b'], queueUrls: { 'vm-a': 'q-a', 'vm-b': 'q-b' } };
    const plane = fakeControlPlane(job, { 'vm-a': 'host-old', 'vm-b': 'host-old' });
    const sqs = fakeSqs();
    const old = await host('host-old', sqs, plane);
    const next = await host('host-new', sqs, plane);
    const withHolders = () => ({ ...job, spillHosts: Object.fromEntries([...plane.workers].map(([vmId, worker]) => [vmId, worker.hostId])) });
    const ofB = (records: ShuffleRecord[]) => records.filter((record) => workerFor(job, record.key) === 'vm-b');

    await old.service.update([withHolders()], new Set(['vm-a', 'vm-b']));
    await old.service.send('vm-a', job.jobId, 'a-0', batch('a', 0));
    await old.service.send('vm-b', job.jobId, 'b-0', batch('b', 0));
    const before = ofB([...batch('a', 0), ...batch('b', 0)]);
    await until(() => old.service.stats()['shuf-1/vm-b']?.received === before.length);
    // What vm-b read at its old host: the first records, by offset.
    const readBefore = await old.service.read('vm-b', job.jobId, 0, 10);

    // vm-b moves: its old host hears it left, its new host that it runs there (the spill held elsewhere).
    plane.vmHosts['vm-b'] = 'host-new';
    await old.service.keepOnly(new Set(['vm-a']));
    expect(old.service.heldSpills()).toEqual(['shuf-1/vm-b']);
    expect(plane.workers.get('vm-b')!.spillUrl).toBe(old.url);
    await next.service.update([withHolders()], new Set(['vm-b']));
    // Sent meanwhile by the worker that stayed: waits in vm-b's queue.
    await old.service.send('vm-a', job.jobId, 'a-1', batch('a', 1));
    // At its new host, vm-b's batch sent before is known; its next one is taken.
    expect(await next.service.send('vm-b', job.jobId, 'b-0', batch('b', 0))).toEqual({ accepted: 50, duplicate: true });
    expect(await next.service.send('vm-b', job.jobId, 'b-1', batch('b', 1))).toEqual({ accepted: 50, duplicate: false });
    expect(await next.service.close('vm-b', job.jobId)).toEqual({ sent: 100 });
    expect(plane.workers.get('vm-b')).toMatchObject({ hostId: 'host-new', previousHostId: 'host-old' });

    const all = ofB([...batch('a', 0), ...batch('b', 0), ...batch('a', 1), ...batch('b', 1)]);
    await until(() => next.service.stats()['shuf-1/vm-b']?.received === all.length);
    const atNew = await readAll(next.service, 'vm-b', job.jobId);
    expect(atNew.map((record) => record.value).sort()).toEqual(all.map((record) => record.value).sort());
    // The same offsets mean the same records as at the old host.
    expect(atNew.slice(0, 10)).toEqual(readBefore.records);
    // The host reports what it received in batches (a timer after the last record): the count reaches the control plane soon after.
    await until(() => plane.workers.get('vm-b')!.received === all.length);
    expect(plane.workers.get('vm-b')).toMatchObject({ received: all.length, sent: 100, closed: true });
    await until(() => !existsSync(path.join(old.dir, job.jobId, 'vm-b.records')) && old.service.heldSpills().length === 0);
  });

  it('refuses the spill to a request without the ticket issued, for another VM, or from another host, and seals a spill asked for before its host heard the worker left', async () => {
    const job: HostShuffleJob = { jobId: 'shuf-2', partitions: 2, workers: ['vm-a', 'vm-b'], queueUrls: { 'vm-a': 'q2-a', 'vm-b': 'q2-b' } };
    const plane = fakeControlPlane(job, { 'vm-a': 'host-old', 'vm-b': 'host-old' });
    const sqs = fakeSqs();
    const old = await host('host-old', sqs, plane);
    await old.service.update([job], new Set(['vm-a', 'vm-b']));
    await old.service.send('vm-b', job.jobId, 'b-0', batch('b', 0));
    // Received and reported, with where the old host serves the spill.
    await until(() => plane.workers.get('vm-b')!.spillUrl !== undefined);

    plane.vmHosts['vm-b'] = 'host-new';
    const { ticket } = await plane.handoffsFor('host-new').ticket(job.jobId, 'vm-b');
    const get = async (vmId: string, headers: Record<string, string>, part = '/records') =>
      (await fetch(`${old.url}/v1/shuffle/${job.jobId}/workers/${vmId}${part}`, { headers })).status;
    const as = (hostId: string, value = ticket) => ({ authorization: `Bearer ${value}`, 'x-stratoplane-host': hostId });
    expect(await get('vm-b', {})).toBe(401);
    expect(await get('vm-b', as('host-new', randomBytes(32).toString('base64url')))).toBe(403);
    expect(await get('vm-b', as('host-other'))).toBe(403);
    expect(await get('vm-a', as('host-new'))).toBe(403);
    // Another host cannot get a ticket for it either.
    await expect(plane.handoffsFor('host-other').ticket(job.jobId, 'vm-b')).rejects.toThrow('no ticket');
    // The host it runs on gets it, though the old host still thinks it runs here: sealed then, nothing more taken.
    expect(await get('vm-b', as('host-new'))).toBe(200);
    await expect(old.service.send('vm-b', job.jobId, 'b-1', batch('b', 1))).rejects.toMatchObject({ status: 503 });
    await old.service.update([job], new Set(['vm-a', 'vm-b']));
    expect(old.service.stats()['shuf-2/vm-b']).toBeUndefined();
  });
});
