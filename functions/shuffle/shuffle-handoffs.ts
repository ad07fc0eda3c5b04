import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { CheckShuffleHandoffRequest, ShuffleHandoffCheck, ShuffleHandoffTicket } from '#events/shuffle.ts';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError, ForbiddenError, NotFoundError } from '../core/errors.ts';
import { getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';
import { type ShuffleJobItem, type ShuffleWorkerItem, spillHolderOf } from './shuffle-jobs.ts';

/** How long a ticket lets its host fetch a spill (a completed hand-off is confirmed with it after that too). */
export const HANDOFF_TICKET_SECONDS = 600;

export const ticketHash = (ticket: string) => createHash('sha256').update(ticket).digest('hex');

/**
 * For the host a worker runs on now, when another host holds the worker's spill (the worker moved):
 * a ticket to fetch it from that host's peer listener. Only the ticket's SHA-256 is kept, with the
 * host it was issued to; asking again replaces it.
 */
export async function issueShuffleHandoff(table: string, hostId: string, jobId: string, vmId: string): Promise<ShuffleHandoffTicket> {
  const job = await getItem<ShuffleJobItem>(table, keys.shuffleJob(jobId));
  if (!job) throw new NotFoundError('shuffle job', jobId);
  const [vm, worker] = await Promise.all([
    getItem<{ hostId: string }>(table, keys.vm(vmId)),
    getItem<ShuffleWorkerItem>(table, keys.shuffleWorker(jobId, vmId)),
  ]);
  if (!job.workers.includes(vmId) || vm?.hostId !== hostId) throw new ForbiddenError(`vm ${vmId} is not a worker of shuffle job ${jobId} on host ${hostId}`);
  const holder = spillHolderOf(job, vmId, worker, vm.hostId);
  if (holder === undefined || holder === hostId) throw new ConflictError(`host ${hostId} holds the spill of vm ${vmId} already: nothing to hand off`);
  if (!worker?.spillUrl) throw new ConflictError(`host ${holder} holds the spill of vm ${vmId} but has not said yet where it serves it; retry shortly`);
  const ticket = randomBytes(32).toString('base64url');
  const expiresAt = new Date(Date.now() + HANDOFF_TICKET_SECONDS * 1000).toISOString();
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.shuffleWorker(jobId, vmId),
        UpdateExpression: 'SET handoffHash = :hash, handoffTo = :to, handoffExpiresAt = :expires',
        ConditionExpression: 'hostId = :holder',
        ExpressionAttributeValues: { ':hash': ticketHash(ticket), ':to': hostId, ':expires': expiresAt, ':holder': holder },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new ConflictError(`the spill of vm ${vmId} changed hands meanwhile; retry`);
    throw error;
  }
  return { jobId, vmId, fromHostId: holder, spillUrl: worker.spillUrl, ticket, expiresAt };
}

/**
 * What the host holding (or, until it deleted it, having held) a worker's spill asks of a ticket
 * a peer presented: good only if issued for this worker to the host it runs on now, that host
 * being the one that presents it. `pending`: serve the spill; `complete`: that host took it over,
 * delete the copy here.
 */
export async function checkShuffleHandoff(
  table: string,
  hostId: string,
  jobId: string,
  vmId: string,
  request: CheckShuffleHandoffRequest,
  now = new Date(),
): Promise<ShuffleHandoffCheck> {
  const [job, worker, vm, toHost] = await Promise.all([
    getItem<ShuffleJobItem>(table, keys.shuffleJob(jobId)),
    getItem<ShuffleWorkerItem>(table, keys.shuffleWorker(jobId, vmId)),
    getItem<{ hostId: string }>(table, keys.vm(vmId)),
    getItem<{ address: string }>(table, keys.host(request.toHostId)),
  ]);
  const verdict = judgeHandoffTicket({ hostId, vmId, ...request, now, job, worker, vmHostId: vm?.hostId });
  if ('refused' in verdict)
    throw new ForbiddenError(
      `the ticket does not let host ${request.toHostId} take the spill of vm ${vmId} in shuffle job ${jobId} from host ${hostId}: ${verdict.refused}`,
    );
  if (!toHost) throw new ForbiddenError(`host ${request.toHostId} is not registered`);
  return { state: verdict.state, toHostId: request.toHostId, toAddress: toHost.address };
}

/**
 * Whether a ticket presented to `hostId` lets `toHostId` have the worker's spill: it must be the
 * one issued (by hash), to that host, which runs the worker now; `pending` while `hostId` holds
 * the spill and the ticket is fresh, `complete` once `toHostId` took it over from `hostId`.
 */
export function judgeHandoffTicket(input: {
  hostId: string;
  vmId: string;
  toHostId: string;
  ticket: string;
  now: Date;
  job: Pick<ShuffleJobItem, 'workers'> | undefined;
  worker: ShuffleWorkerItem | undefined;
  vmHostId: string | undefined;
}): { state: 'pending' | 'complete' } | { refused: string } {
  const { hostId, toHostId, worker } = input;
  if (!input.job?.workers.includes(input.vmId) || !worker?.handoffHash) return { refused: 'no hand-off of it was asked for' };
  const presented = Buffer.from(ticketHash(input.ticket), 'hex');
  const issued = Buffer.from(worker.handoffHash, 'hex');
  if (presented.length !== issued.length || !timingSafeEqual(presented, issued)) return { refused: 'not the ticket issued' };
  if (worker.handoffTo !== toHostId) return { refused: `it was issued to host ${worker.handoffTo}` };
  if (input.vmHostId !== toHostId) return { refused: `the vm runs on host ${input.vmHostId ?? 'none'} now` };
  if (worker.hostId === hostId) {
    if (!(Date.parse(worker.handoffExpiresAt ?? '') > input.now.getTime())) return { refused: 'the ticket expired' };
    return { state: 'pending' };
  }
  if (worker.hostId === toHostId && worker.previousHostId === hostId) return { state: 'complete' };
  return { refused: `host ${hostId} does not hold it` };
}
