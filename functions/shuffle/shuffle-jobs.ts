import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { CreateShuffleJobRequest, HostShuffleJob, ShuffleWorkerReport } from '#events/shuffle.ts';
import { shuffleHostsTags } from '#events/host-access.ts';
import { dynamodb } from '../platform/clients.ts';
import { getTenantItem } from '../core/access.ts';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { assertHomeRegion } from '../core/regions.ts';
import { cancellationCodes, getItem, queryAll, type TransactItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { getVm } from '../compute/vms.ts';

export interface ShuffleJobItem {
  kind: 'shuffle-job';
  jobId: string;
  tenantId: string;
  region: string;
  name: string;
  partitions: number;
  workers: string[];
  queueUrls: Record<string, string>;
  /** Each worker's host when the job began: the holder of its spill until a report or hand-off says otherwise. */
  workerHosts?: Record<string, string>;
  /** running until every worker has closed and as many records arrived as were sent. */
  state: 'running' | 'complete';
  createdAt: string;
  completedAt?: string;
}

export interface ShuffleWorkerItem {
  kind: 'shuffle-worker';
  jobId: string;
  vmId: string;
  /** The host holding the worker's spill (and reporting it): the worker's host, until the worker moves and its new host takes the spill over. */
  hostId: string;
  sent?: number;
  closed?: boolean;
  received: number;
  /** Where the holder serves the spill to the worker's next host. */
  spillUrl?: string;
  /** The hand-off under way or last done: the ticket's SHA-256 (never the ticket), the host it was issued to, until when it may fetch. */
  handoffHash?: string;
  handoffTo?: string;
  handoffExpiresAt?: string;
  /** The host the spill was last taken over from: it may delete its copy. */
  previousHostId?: string;
}

/** Who holds a worker's spill: the host that last reported it, else its host when the job began, else (a job older than that) its host now. */
export function spillHolderOf(
  job: Pick<ShuffleJobItem, 'workerHosts'>,
  vmId: string,
  worker: Pick<ShuffleWorkerItem, 'hostId'> | undefined,
  vmHostId?: string,
) {
  return worker?.hostId ?? job.workerHosts?.[vmId] ?? vmHostId;
}

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type ShuffleJobView = z.infer<typeof responses.ShuffleJob>;

/**
 * Creates a shuffle job over running VMs of this region: one inbound queue per worker (made by
 * `ensureQueue`), and the job recorded on each worker VM in the same transaction, so each
 * worker's host learns of it (the VM's change reaches the host as a configuration refresh).
 */
export async function createShuffleJob(
  table: string,
  region: string,
  tenantId: string,
  request: CreateShuffleJobRequest,
  ensureQueue: (jobId: string, vmId: string, hostIds: readonly string[]) => Promise<string>,
): Promise<ShuffleJobView> {
  const workers = [...new Set(request.workerVmIds)];
  if (workers.length !== request.workerVmIds.length) throw new ValidationError('body.workerVmIds: each VM once');
  const hostIds = new Set<string>();
  const workerHosts: Record<string, string> = {};
  for (const vm of await Promise.all(workers.map((vmId) => getVm(table, tenantId, vmId)))) {
    assertHomeRegion(vm, region, `vm ${vm.vmId}`);
    // A worker on its way up joins (its host serves the job to it once it runs); one stopped or failed cannot work.
    if (vm.powerState === 'stopped' || vm.state === 'failed' || vm.state === 'stopped' || vm.state === 'stopping' || vm.waitingForImage)
      throw new ConflictError(`workerVmIds: vm ${vm.vmId} is ${vm.state}${vm.stateReason ? ` (${vm.stateReason})` : ''}, not running or on its way`);
    hostIds.add(vm.hostId);
    workerHosts[vm.vmId] = vm.hostId;
  }
  // The queues are tagged with the workers' hosts: only those may send to or read from them.
  if (!shuffleHostsTags(hostIds))
    throw new ConflictError(`workerVmIds: the workers run on ${hostIds.size} hosts whose ids are too long to name on their queues; use fewer workers`);
  const jobId = newId('shuf');
  const urls = await Promise.all(workers.map((vmId) => ensureQueue(jobId, vmId, [...hostIds])));
  const job: ShuffleJobItem & Record<string, unknown> = {
    ...keys.shuffleJob(jobId),
    kind: 'shuffle-job',
    jobId,
    tenantId,
    region,
    name: request.name,
    partitions: request.partitions ?? workers.length,
    workers,
    queueUrls: Object.fromEntries(workers.map((vmId, index) => [vmId, urls[index]!])),
    workerHosts,
    state: 'running',
    createdAt: new Date().toISOString(),
  };
  const items: TransactItem[] = [
    { Put: { TableName: table, Item: job, ConditionExpression: 'attribute_not_exists(pk)' } },
    ...workers.map(
      (vmId): TransactItem => ({
        Update: {
          TableName: table,
          Key: keys.vm(vmId),
          UpdateExpression: 'ADD shuffleJobIds :job',
          // As checked above, and still so: not stopped or failed, not waiting for its image.
          ConditionExpression:
            'tenantId = :tenant AND NOT (#state IN (:failed, :stopped, :stopping)) AND (attribute_not_exists(powerState) OR powerState = :on) AND attribute_not_exists(waitingForImage)',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: {
            ':job': new Set([jobId]),
            ':tenant': tenantId,
            ':failed': 'failed',
            ':stopped': 'stopped',
            ':stopping': 'stopping',
            ':on': 'running',
          },
        },
      }),
    ),
  ];
  try {
    await dynamodb.send(new TransactWriteCommand({ TransactItems: items }));
  } catch (error) {
    const failed = cancellationCodes(error)?.indexOf('ConditionalCheckFailed');
    if (failed !== undefined && failed > 0) throw new ConflictError(`workerVmIds: vm ${workers[failed - 1]} was deleted, stopped or failed meanwhile`);
    throw error;
  }
  return toView(job, []);
}

export async function getShuffleJob(table: string, tenantId: string, jobId: string): Promise<ShuffleJobView> {
  const job = await getTenantItem<ShuffleJobItem>(table, keys.shuffleJob(jobId), tenantId, 'shuffle job', jobId);
  return toView(job, await workersOf(table, jobId));
}

const workersOf = (table: string, jobId: string) =>
  queryAll<ShuffleWorkerItem>({
    TableName: table,
    KeyConditionExpression: 'pk = :pk AND begins_with(sk, :workers)',
    ExpressionAttributeValues: { ':pk': keys.shuffleJob(jobId).pk, ':workers': 'WORKER#' },
    ConsistentRead: true,
  });

function toView(job: ShuffleJobItem, reports: ShuffleWorkerItem[]): ShuffleJobView {
  const byVm = new Map(reports.map((report) => [report.vmId, report]));
  const workers = job.workers.map((vmId) => {
    const report = byVm.get(vmId);
    return { vmId, hostId: report?.hostId, sent: report?.sent, closed: report?.closed ?? false, received: report?.received ?? 0 };
  });
  return {
    jobId: job.jobId,
    name: job.name,
    region: job.region,
    state: job.state,
    partitions: job.partitions,
    workers,
    recordsIn: workers.reduce((sum, worker) => sum + (worker.sent ?? 0), 0),
    recordsOut: workers.reduce((sum, worker) => sum + worker.received, 0),
    createdAt: job.createdAt,
    completedAt: job.completedAt,
  };
}

/**
 * Records what the host holding a worker's spill says of it, and completes the job once every
 * worker has closed and the records stored equal the records sent. Reports are absolute;
 * `received` only grows. The holder is the worker's host until the worker moves: its new host
 * takes the spill over (`handoffFrom`, with the ticket issued to it, see shuffle-handoffs.ts) and
 * reports from then on; the old one, until then, even though the worker left it.
 */
export async function reportShuffleWorker(
  table: string,
  hostId: string,
  jobId: string,
  vmId: string,
  report: ShuffleWorkerReport,
  retag?: (queueUrl: string, hostIds: readonly string[]) => Promise<void>,
): Promise<ShuffleJobView> {
  const job = await getItem<ShuffleJobItem>(table, keys.shuffleJob(jobId));
  if (!job) throw new NotFoundError('shuffle job', jobId);
  const [vm, worker] = await Promise.all([
    getItem<{ hostId: string }>(table, keys.vm(vmId)),
    getItem<ShuffleWorkerItem>(table, keys.shuffleWorker(jobId, vmId)),
  ]);
  if (!job.workers.includes(vmId)) throw new ForbiddenError(`vm ${vmId} is not a worker of shuffle job ${jobId} on host ${hostId}`);
  const holder = spillHolderOf(job, vmId, worker, vm?.hostId);
  const values = {
    ':kind': 'shuffle-worker',
    ':job': jobId,
    ':vm': vmId,
    ':host': hostId,
    ':received': report.received,
    ...(report.sent !== undefined ? { ':sent': report.sent } : {}),
    ...(report.closed ? { ':closed': true } : {}),
    ...(report.spillUrl ? { ':url': report.spillUrl } : {}),
  };
  const set = `SET kind = :kind, jobId = :job, vmId = :vm, hostId = :host, received = :received${report.sent !== undefined ? ', sent = :sent' : ''}${report.closed ? ', closed = :closed' : ''}${report.spillUrl ? ', spillUrl = :url' : ''}`;
  if (report.handoffFrom !== undefined) {
    // The worker's new host took the spill over: it holds it from now on.
    if (vm?.hostId !== hostId) throw new ForbiddenError(`vm ${vmId} does not run on host ${hostId}: only its host takes its spill over`);
    if (holder !== report.handoffFrom || worker?.handoffTo !== hostId)
      throw new ConflictError(
        `handoffFrom: no hand-off of vm ${vmId}'s spill from host ${report.handoffFrom} to host ${hostId} is under way (held by ${holder})`,
      );
    try {
      await dynamodb.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.shuffleWorker(jobId, vmId),
          UpdateExpression: `${set}, previousHostId = :from`,
          ConditionExpression: 'hostId = :from AND handoffTo = :host AND received <= :received',
          ExpressionAttributeValues: { ...values, ':from': report.handoffFrom },
        }),
      );
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException)
        throw new ConflictError(
          `handoffFrom: the spill of vm ${vmId} changed hands meanwhile, or holds fewer records than host ${report.handoffFrom} reported`,
        );
      throw error;
    }
    // The host it left holds nothing of the job's any more (unless another worker runs there): its queues leave it out.
    if (retag) await retagQueuesOfJob(table, job, retag);
  } else {
    if (holder !== hostId) {
      if (vm?.hostId === hostId)
        throw new ConflictError(`host ${holder} holds the spill of vm ${vmId} in shuffle job ${jobId}: take it over (POST …/handoff) before reporting`);
      throw new ForbiddenError(`vm ${vmId} is not a worker of shuffle job ${jobId} on host ${hostId}`);
    }
    try {
      await dynamodb.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.shuffleWorker(jobId, vmId),
          UpdateExpression: set,
          ConditionExpression: '(attribute_not_exists(hostId) OR hostId = :host) AND (attribute_not_exists(received) OR received <= :received)',
          ExpressionAttributeValues: values,
        }),
      );
    } catch (error) {
      // An older report overtaken by a newer one (or by a hand-off).
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
  }
  const view = toView(job, await workersOf(table, jobId));
  if (job.state === 'running' && view.workers.every((worker) => worker.closed) && view.recordsIn === view.recordsOut) {
    const completedAt = new Date().toISOString();
    try {
      await dynamodb.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.shuffleJob(jobId),
          UpdateExpression: 'SET #state = :complete, completedAt = :now',
          ConditionExpression: '#state = :running',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':complete': 'complete', ':running': 'running', ':now': completedAt },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
    }
    return { ...view, state: 'complete', completedAt };
  }
  return view;
}

/** Deletes a job: its queues, its records on the worker VMs (their hosts then drop its spill), and its items. */
export async function deleteShuffleJob(table: string, tenantId: string, jobId: string, deleteQueue: (queueUrl: string) => Promise<void>): Promise<void> {
  const job = await getTenantItem<ShuffleJobItem>(table, keys.shuffleJob(jobId), tenantId, 'shuffle job', jobId);
  await Promise.all(Object.values(job.queueUrls).map(deleteQueue));
  await Promise.all(
    job.workers.map(async (vmId) => {
      try {
        await dynamodb.send(
          new UpdateCommand({
            TableName: table,
            Key: keys.vm(vmId),
            UpdateExpression: 'DELETE shuffleJobIds :job',
            ConditionExpression: 'attribute_exists(pk)',
            ExpressionAttributeValues: { ':job': new Set([jobId]) },
          }),
        );
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    }),
  );
  await Promise.all([
    ...job.workers.map((vmId) => dynamodb.send(new DeleteCommand({ TableName: table, Key: keys.shuffleWorker(jobId, vmId) }))),
    dynamodb.send(new DeleteCommand({ TableName: table, Key: keys.shuffleJob(jobId) })),
  ]);
}

/** The jobs a host's worker VMs take part in, as its agent needs them: with the host holding each worker's spill. */
export async function shuffleJobsFor(table: string, jobIds: Iterable<string>): Promise<HostShuffleJob[]> {
  const jobs = await Promise.all([...new Set(jobIds)].map((jobId) => getItem<ShuffleJobItem>(table, keys.shuffleJob(jobId))));
  return Promise.all(
    jobs
      .filter((job): job is ShuffleJobItem => job !== undefined)
      .map(async (job) => {
        const reported = new Map((await workersOf(table, job.jobId)).map((worker) => [worker.vmId, worker]));
        const spillHosts = Object.fromEntries(
          job.workers.flatMap((vmId) => {
            const holder = spillHolderOf(job, vmId, reported.get(vmId));
            return holder ? [[vmId, holder] as const] : [];
          }),
        );
        const { jobId, partitions, workers, queueUrls } = job;
        return { jobId, partitions, workers, queueUrls, ...(Object.keys(spillHosts).length > 0 ? { spillHosts } : {}) };
      }),
  );
}

/**
 * After a worker VM moved to another host: each job it works for has its queues tagged again
 * with the hosts its workers run on now (`retag`, see shuffle-queues.ts), so the host policy lets
 * the new host in, and with the hosts holding its workers' spills: the host it left keeps the
 * queue until its spill is handed over (it may be storing and deleting the last chunks it took),
 * and is left out when the hand-off completes (retagged again then).
 */
export async function retagQueuesOfWorker(table: string, vmId: string, retag: (queueUrl: string, hostIds: readonly string[]) => Promise<void>): Promise<void> {
  const vm = await getItem<{ shuffleJobIds?: Set<string> }>(table, keys.vm(vmId));
  await retagQueuesOfJobs(table, vm?.shuffleJobIds ?? [], retag);
}

/** The same, for a worker whose jobs the caller read already (its VM item's `shuffleJobIds`). */
export async function retagQueuesOfJobs(
  table: string,
  jobIds: Iterable<string>,
  retag: (queueUrl: string, hostIds: readonly string[]) => Promise<void>,
): Promise<void> {
  for (const jobId of jobIds) {
    const job = await getItem<ShuffleJobItem>(table, keys.shuffleJob(jobId));
    if (job) await retagQueuesOfJob(table, job, retag);
  }
}

async function retagQueuesOfJob(table: string, job: ShuffleJobItem, retag: (queueUrl: string, hostIds: readonly string[]) => Promise<void>): Promise<void> {
  const [workers, reported] = await Promise.all([
    Promise.all(job.workers.map((workerId) => getItem<{ hostId: string }>(table, keys.vm(workerId)))),
    workersOf(table, job.jobId),
  ]);
  const holders = job.workers.map((workerId) =>
    spillHolderOf(
      job,
      workerId,
      reported.find((worker) => worker.vmId === workerId),
    ),
  );
  const hostIds = [...new Set([...workers.flatMap((worker) => (worker ? [worker.hostId] : [])), ...holders.flatMap((holder) => (holder ? [holder] : []))])];
  await Promise.all(Object.values(job.queueUrls).map((queueUrl) => retag(queueUrl, hostIds)));
}
