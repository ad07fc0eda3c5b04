import { z } from 'zod';
import { resourceId } from './identifiers.ts';

export const CreateProjectRequest = z.strictObject({
  name: z.string().min(1).max(128),
});
export type CreateProjectRequest = z.infer<typeof CreateProjectRequest>;

/** Kinds of node in a project's resource graph. */
export const NodeKind = z.enum(['project', 'network', 'vm', 'disk', 'service-account', 'image-copy']);
export type NodeKind = z.infer<typeof NodeKind>;

/**
 * A message to one node of the resource graph, on the FIFO graph queue with the node id as
 * message group, so each node handles its messages one at a time and in order.
 * `release`: release the node once nothing uses it (a project: once it owns nothing);
 * `check`: something beneath or using the node went away, look again.
 */
export const GraphMessage = z.strictObject({
  action: z.enum(['release', 'check']),
  kind: NodeKind,
  nodeId: resourceId,
  projectId: resourceId,
  /** The node's region, for regional nodes: only that region's control plane handles the message. */
  region: z.string().min(1).max(32).optional(),
});
export type GraphMessage = z.infer<typeof GraphMessage>;

/** An outgoing graph message and the node that sends it, which makes its deduplication id. */
export interface OutgoingGraphMessage {
  message: GraphMessage;
  from: string;
}
