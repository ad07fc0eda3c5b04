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
