import { z } from 'zod';
import { ipv4Address, resourceId } from './identifiers.ts';

/**
 * One address slot of a virtual network as host agents see it. `version` grows by one on every
 * change to the slot (placement, migration, release), across the lifetimes of the VMs that use
 * it, so a receiver keeps whichever copy has the highest version.
 */
export const EndpointEntry = z.strictObject({
  ip: ipv4Address,
  version: z.int().min(1),
  state: z.enum(['active', 'released']),
  vmId: resourceId.optional(),
  hostId: resourceId.optional(),
  /** Underlay address of the host running the VM: the tunnel endpoint. */
  endpoint: ipv4Address.optional(),
});
export type EndpointEntry = z.infer<typeof EndpointEntry>;

/**
 * Messages on a host's queue. `epoch` is the host's membership epoch in the network: it grows on
 * every change to the host's VM count there, so a late `leave` never drops a newer membership.
 */
export const EndpointsMessage = z.strictObject({
  kind: z.literal('endpoints'),
  networkId: resourceId,
  epoch: z.int().min(1),
  /** True when `entries` is the whole network as of `epoch` (sent on join), in chunks. */
  snapshot: z.boolean(),
  entries: z.array(EndpointEntry),
});
export type EndpointsMessage = z.infer<typeof EndpointsMessage>;

export const LeaveMessage = z.strictObject({
  kind: z.literal('leave'),
  networkId: resourceId,
  epoch: z.int().min(1),
});
export type LeaveMessage = z.infer<typeof LeaveMessage>;

/** What a forwarding table applies. */
export type NetworkMessage = EndpointsMessage | LeaveMessage;

/** The service account of a VM on this host changed: fetch credentials again. */
export const CredentialsChangedMessage = z.strictObject({
  kind: z.literal('credentials-changed'),
  vmId: resourceId,
});
export type CredentialsChangedMessage = z.infer<typeof CredentialsChangedMessage>;

/** A disk whose file is in this host's pool folder was deleted: the file goes. */
export const DiskDeletedMessage = z.strictObject({
  kind: z.literal('disk-deleted'),
  diskId: resourceId,
  poolId: resourceId,
});
export type DiskDeletedMessage = z.infer<typeof DiskDeletedMessage>;

/** The networks allowed to open pairs to a network of this host's VMs changed: fetch them again (pairs no longer allowed open no new connections). */
export const AllowedSourcesChangedMessage = z.strictObject({
  kind: z.literal('allowed-sources-changed'),
  networkId: resourceId,
});
export type AllowedSourcesChangedMessage = z.infer<typeof AllowedSourcesChangedMessage>;

export const HostMessage = z.discriminatedUnion('kind', [
  EndpointsMessage,
  LeaveMessage,
  CredentialsChangedMessage,
  DiskDeletedMessage,
  AllowedSourcesChangedMessage,
]);
export type HostMessage = z.infer<typeof HostMessage>;

/** A host queue message body: several updates batched for one host. */
export const HostMessageBatch = z.strictObject({ messages: z.array(HostMessage).min(1) });
export type HostMessageBatch = z.infer<typeof HostMessageBatch>;

/** Work items the stream handler puts on the fan-out queue (about one network's VMs, or one host's disk files). */
export const NetworkChange = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('endpoint'), networkId: resourceId, entry: EndpointEntry }),
  z.strictObject({ kind: z.literal('join'), networkId: resourceId, hostId: resourceId, epoch: z.int().min(1) }),
  z.strictObject({ kind: z.literal('leave'), networkId: resourceId, hostId: resourceId, epoch: z.int().min(1) }),
  z.strictObject({ kind: z.literal('credentials'), networkId: resourceId, hostId: resourceId, vmId: resourceId }),
  z.strictObject({ kind: z.literal('disk-deleted'), hostId: resourceId, diskId: resourceId, poolId: resourceId }),
  z.strictObject({ kind: z.literal('allowed-sources'), networkId: resourceId }),
]);
export type NetworkChange = z.infer<typeof NetworkChange>;

/** What a host agent fetches on start: every network it is a member of, whole. */
export const ForwardingTableResponse = z.strictObject({
  hostId: resourceId,
  networks: z.array(z.strictObject({ networkId: resourceId, epoch: z.int().min(1), entries: z.array(EndpointEntry) })),
});
export type ForwardingTableResponse = z.infer<typeof ForwardingTableResponse>;
