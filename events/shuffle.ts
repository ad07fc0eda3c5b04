import { z } from 'zod';
import { resourceId } from './identifiers.ts';

export const CreateShuffleJobRequest = z.strictObject({
  name: z.string().min(1).max(128),
  /** The VMs that send records and each receive the partitions assigned to them. */
  // Each VM once: the handler refuses a repeated one (400), which the description says with uniqueItems.
  workerVmIds: z.array(resourceId).min(1).max(64).meta({ uniqueItems: true, description: 'The worker VMs, each once: running VMs of the tenant.' }),
  /** Partitions of the key space; partition p goes to worker p mod workers. Default: one per worker. */
  partitions: z.int().min(1).max(1024).optional(),
});
export type CreateShuffleJobRequest = z.infer<typeof CreateShuffleJobRequest>;

/** What a worker's host agent says of it, as absolute numbers (so saying it twice is harmless). */
export const ShuffleWorkerReport = z.strictObject({
  /** Distinct records the worker sent, once it has closed its side. */
  sent: z.int().min(0).optional(),
  closed: z.boolean().optional(),
  /** Distinct records of the worker's partitions its host has stored. */
  received: z.int().min(0),
  /**
   * Where the reporting host serves this worker's spill to the host the worker moves to (its
   * agent's peer listener, on its underlay address): kept with the worker, told to that host only.
   */
  spillUrl: z
    .url({ protocol: /^https?$/ })
    .max(300)
    .optional(),
  /**
   * The reporting host took the worker's spill over from this host (with a hand-off ticket issued
   * to it): from this report on it holds the worker's partitions. Only the host the worker runs on
   * now, holding the ticket, may say so.
   */
  handoffFrom: resourceId.optional(),
});
export type ShuffleWorkerReport = z.infer<typeof ShuffleWorkerReport>;

/** A shuffle job as a host agent needs it: where each worker's partitions go. */
export const HostShuffleJob = z.strictObject({
  jobId: resourceId,
  partitions: z.int().min(1),
  /** Worker VM ids in partition order: partition p belongs to workers[p % workers.length]. */
  workers: z.array(resourceId).min(1),
  /** Each worker's inbound queue. */
  queueUrls: z.record(resourceId, z.string()),
  /**
   * The host that holds each worker's spilled partitions (its host when the job began, until a
   * hand-off moves them). A host that now runs a worker held elsewhere fetches its spill first.
   */
  spillHosts: z.record(resourceId, resourceId).optional(),
});
export type HostShuffleJob = z.infer<typeof HostShuffleJob>;

/** One record: a key and a value, both text. */
export const ShuffleRecord = z.strictObject({ key: z.string().max(1024), value: z.string().max(64 * 1024) });
export type ShuffleRecord = z.infer<typeof ShuffleRecord>;

/**
 * Records for one worker, on its job queue. `chunkId` names the sender's batch, the target and
 * the piece, so a message delivered twice (SQS may) is stored once.
 */
export const ShuffleChunkMessage = z.strictObject({
  jobId: resourceId,
  targetVmId: resourceId,
  chunkId: z.string().min(1).max(300),
  records: z.array(ShuffleRecord).min(1),
});
export type ShuffleChunkMessage = z.infer<typeof ShuffleChunkMessage>;

/** What the control plane gives the host a worker moved to: a ticket to fetch the worker's spill from the host that holds it. */
export const ShuffleHandoffTicket = z.strictObject({
  jobId: resourceId,
  vmId: resourceId,
  /** The host holding the worker's spill. */
  fromHostId: resourceId,
  /** Where that host serves it. */
  spillUrl: z.string(),
  /** Shown once: the control plane keeps only its SHA-256. Presented to the holding host as a bearer token. */
  ticket: z.string(),
  expiresAt: z.string(),
});
export type ShuffleHandoffTicket = z.infer<typeof ShuffleHandoffTicket>;

/** What a holding host asks of a ticket presented to it. */
export const CheckShuffleHandoffRequest = z.strictObject({
  ticket: z.string().min(16).max(128),
  /** The host that presented it (says so in its request). */
  toHostId: resourceId,
});
export type CheckShuffleHandoffRequest = z.infer<typeof CheckShuffleHandoffRequest>;

/**
 * The control plane's word on a ticket: `pending`, the presenting host runs the worker now and may
 * fetch the spill; `complete`, it took the spill over, so the holder may delete its copy.
 */
export const ShuffleHandoffCheck = z.strictObject({
  state: z.enum(['pending', 'complete']),
  toHostId: resourceId,
  /** The presenting host's registered underlay address: its requests come from there. */
  toAddress: z.string(),
});
export type ShuffleHandoffCheck = z.infer<typeof ShuffleHandoffCheck>;
