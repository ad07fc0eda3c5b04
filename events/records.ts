import { z } from 'zod';
import { EgressPolicy, VmAttributes } from './vm-config.ts';
import {
  AcceleratorKind,
  AutoPlacement,
  HostFailureRecovery,
  MachineType,
  NetworkPlacement,
  OnHostFailure,
  PowerState,
  VmRuntimeKind,
  VmState,
} from './vm-lifecycle.ts';
import { EndpointEntry } from './endpoints.ts';
import { MigrationOutcome, MigrationRecord } from './migrations.ts';
import { ipv4Address, ipv4Cidr, resourceId } from './identifiers.ts';
import { PairRevocations } from './tokens.ts';

/** Items of the metadata table, as they appear in stream images once unmarshalled. */
export const HostItem = z.object({
  kind: z.literal('host'),
  hostId: resourceId,
  address: ipv4Address,
  /** The region the host registered in: only that region's control plane places VMs on it or sends to its queue. */
  region: z.string().optional(),
  capacity: z.int(),
  vmCount: z.int(),
  queueUrl: z.string(),
  createdAt: z.string(),
  /** The opaque name the host goes by in its VMs' tokens, which outside origins see: never its id (see hostTokenRef). */
  tokenRef: z.string().optional(),
  /** What its agent last registered it runs VMs with; `none`: placement keeps off it. Absent: registered without saying (taken as able). */
  vmRuntime: VmRuntimeKind.optional(),
  /** With `vmRuntime: qemu`: KVM or TCG. */
  accelerator: AcceleratorKind.optional(),
  /** With `vmRuntime: qemu`: its agent moves guests live. */
  liveMigration: z.boolean().optional(),
  /** With `liveMigration`: the CA certificate (PEM) of its TLS identity in migrations (host-agent/vm-runtime/migration-tls.ts). */
  migrationCertificate: z.string().optional(),
  /** `off`: placement never chooses it, only creates and moves that name it (absent: `on`). */
  autoPlacement: AutoPlacement.optional(),
  /** An operator keeps new VMs off it (`POST /hosts/{id}/cordon`); what runs there stays. */
  cordoned: z.boolean().optional(),
  /** Since when an operator has asked every VM off it (`POST /hosts/{id}/drain`); uncordoning ends it. */
  drainStartedAt: z.string().optional(),
  /** VMs the drain could not move at its last try, with why. */
  drainStuck: z.array(z.object({ vmId: z.string(), reason: z.string() })).optional(),
  /** The host the drain moves every VM to, when the operator named one (else placement picks, VM by VM). */
  drainTargetHostId: z.string().optional(),
});
export type HostItem = z.infer<typeof HostItem>;

export const NetworkItem = z.object({
  kind: z.literal('network'),
  networkId: resourceId,
  tenantId: resourceId,
  projectId: resourceId,
  name: z.string(),
  cidr: ipv4Cidr,
  /** Networks are regional, like VPCs: every address of one is allocated by its region's control plane. */
  region: z.string().optional(),
  /** Absent: `spread`. */
  placement: NetworkPlacement.optional(),
  createdAt: z.string(),
});
export type NetworkItem = z.infer<typeof NetworkItem>;

export const VmItem = z.object({
  kind: z.literal('vm'),
  vmId: resourceId,
  tenantId: resourceId,
  projectId: resourceId,
  name: z.string(),
  networkId: resourceId,
  /** Its network's placement (copied at create: a network's never changes), so that its moves need not read the network. Absent: `spread`. */
  networkPlacement: NetworkPlacement.optional(),
  ip: ipv4Address,
  hostId: resourceId,
  /** The region whose control plane placed the VM; its host, network and writes are there. */
  region: z.string().optional(),
  /** See VmState: `provisioning` until its host runs it (meanwhile, maybe, its image is copied into the region), then what its host saw. */
  state: VmState,
  stateReason: z.string().optional(),
  /** When its host saw the state it holds (ms, the host's clock): older reports are ignored. */
  stateObservedAt: z.int().optional(),
  /** What runs it: its host's registered runtime when placed there, then what its host reports running it with. */
  runtime: VmRuntimeKind.optional(),
  /** What its owner asked for (absent: running). */
  powerState: PowerState.optional(),
  /** Raised by each start of a stopped or failed VM and each reboot: its host boots it again. */
  bootGeneration: z.int().optional(),
  /** Set while the VM waits for its image's copy into the region: its host cannot boot it yet. */
  waitingForImage: z.boolean().optional(),
  machineType: MachineType.optional(),
  imageId: resourceId.optional(),
  /** What the VM may reach through its bridge's outbound proxy. */
  egress: EgressPolicy.optional(),
  /** Shuffle jobs the VM is a worker of: its host serves them through the VM's bridge. */
  shuffleJobIds: z.set(z.string()).optional(),
  /** Custom metadata its metadata server serves under `instance/attributes/`. */
  attributes: VmAttributes.optional(),
  /** The service account the VM's tokens are for, if one is attached. */
  serviceAccountId: resourceId.optional(),
  /** Its attached disks. */
  diskIds: z.set(z.string()).optional(),
  /** Raised when an attached disk's size or limits change: its host fetches the VM's disks again. */
  disksRevision: z.int().optional(),
  /** The VM's network-pair secret, encrypted under the pair key with its encryption context (base64). */
  pairKeyCiphertext: z.string().optional(),
  /** Network pairs to this VM that are revoked (or were, lately), by source VM id. */
  pairRevocations: PairRevocations.optional(),
  /** Raised by each change to `pairRevocations`: their writes are conditional on it. */
  pairRevocationsRevision: z.int().optional(),
  /** Its live migration under way, if one is. */
  migration: MigrationRecord.optional(),
  /** How its last live migration ended. */
  lastMigration: MigrationOutcome.optional(),
  /** What happens when its host goes down (absent: wait). */
  onHostFailure: OnHostFailure.optional(),
  /** Its last restart elsewhere after its host went down. */
  lastRecovery: HostFailureRecovery.optional(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type VmItem = z.infer<typeof VmItem>;

export const ServiceAccountItem = z.object({
  kind: z.literal('service-account'),
  serviceAccountId: resourceId,
  tenantId: resourceId,
  projectId: resourceId,
  name: z.string(),
  createdAt: z.string(),
});
export type ServiceAccountItem = z.infer<typeof ServiceAccountItem>;

export const HostKeysItem = z.object({
  kind: z.literal('host-keys'),
  vmId: resourceId,
  tenantId: resourceId,
  keys: z.array(z.object({ keyType: z.string(), base64: z.string(), fingerprint: z.string() })),
  publishedBy: resourceId,
  publishedAt: z.string(),
  /** Compact JWS from the host key attestation KMS key over VM, keys, publisher and time. */
  attestation: z.string(),
});
export type HostKeysItem = z.infer<typeof HostKeysItem>;

/** An address slot: what agents receive of it (EndpointEntry), filed under its network. */
export const SlotItem = z.object({
  kind: z.literal('slot'),
  networkId: resourceId,
  ...EndpointEntry.shape,
  /**
   * The version the committing function itself delivered to every host that needed it (the fast
   * path): the stream's backstop, coming later, sends it to nobody again.
   */
  deliveredVersion: z.int().optional(),
});
export type SlotItem = z.infer<typeof SlotItem>;

export const MemberItem = z.object({
  kind: z.literal('member'),
  networkId: resourceId,
  hostId: resourceId,
  vmCount: z.int(),
  epoch: z.int().min(1),
});
export type MemberItem = z.infer<typeof MemberItem>;

/** What host agents need of a disk's record: where its data is (its file in its pool's folder on that host). */
export const DiskRecord = z.object({
  kind: z.literal('disk'),
  diskId: resourceId,
  poolId: resourceId,
  /** The host whose pool folder holds the disk's file: that of the VM it was last attached to (none: never attached, no file). */
  hostId: resourceId.optional(),
});
export type DiskRecord = z.infer<typeof DiskRecord>;

/** A network another network of the tenant's may open pairs to: its hosts learn of the change (their VMs' admitted pairs). */
export const AllowedSourceRecord = z.object({
  kind: z.literal('allowed-source'),
  networkId: resourceId,
  sourceNetworkId: resourceId,
});
export type AllowedSourceRecord = z.infer<typeof AllowedSourceRecord>;

export const MetadataItem = z.discriminatedUnion('kind', [HostItem, NetworkItem, VmItem, SlotItem, MemberItem, DiskRecord, AllowedSourceRecord]);
export type MetadataItem = z.infer<typeof MetadataItem>;
