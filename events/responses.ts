import { z } from 'zod';
import { ipv4Address, ipv4Cidr, resourceId } from './identifiers.ts';
import { MigrationPhase, migrationId } from './migrations.ts';
import { NodeKind } from './projects.ts';
import { EgressPolicy, VmAttributes } from './vm-config.ts';
import { HostHealth } from './host-health.ts';
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

/**
 * What the API answers, route by route. Strict: a field not listed here is an error in the tests
 * that check every answer against these, so nothing internal reaches a client unnoticed.
 */

const timestamp = z.iso.datetime();
const region = z.string().min(1);
const count = z.int().min(0);

/** A page of a list: at most `limit` items, and `nextToken` when there are more. */
const page = <K extends string, T extends z.ZodType>(key: K, item: T) =>
  z.strictObject({ [key]: z.array(item), nextToken: z.string().optional() } as { [P in K]: z.ZodArray<T> } & { nextToken: z.ZodOptional<z.ZodString> });

export const Host = z.strictObject({
  hostId: resourceId,
  address: ipv4Address,
  region: region.optional(),
  capacity: count,
  vmCount: count,
  /** The host agent's queue: what the control plane pushes to the host. */
  queueUrl: z.url(),
  /**
   * What it runs VMs with, as its agent last registered: `qemu` (real guests), `process`
   * (placeholders, no guest) or `none` (placement keeps off it). Absent: registered without saying.
   */
  vmRuntime: VmRuntimeKind.optional(),
  /** With `vmRuntime: qemu`: KVM or TCG. */
  accelerator: AcceleratorKind.optional(),
  /** With `vmRuntime: qemu`: the host moves running guests live (to and from other such hosts). */
  liveMigration: z.boolean().optional(),
  /** With `liveMigration`: the SHA-256 fingerprint of its migration CA certificate, to compare with the host's own (`openssl x509 -fingerprint -sha256`). */
  migrationCertificateSha256: z.string().optional(),
  /** From its agent's heartbeats (every 5 s): suspect after 12 s of silence, down after 20 s or when never heard from. */
  health: HostHealth,
  /** When its agent's last heartbeat arrived; absent when it never sent one. */
  lastSeen: timestamp.optional(),
  /** `off`: placement never chooses it; it takes only VMs created on it, and guests moved to it, by name. */
  autoPlacement: AutoPlacement,
  /** An operator keeps new VMs off it; what runs there stays. */
  cordoned: z.boolean(),
  /** While an operator drains it: since when, how many VMs are still on it, and those that could not move at the last try, with why. */
  drain: z
    .strictObject({
      startedAt: timestamp,
      vmsLeft: count,
      stuck: z.array(z.strictObject({ vmId: resourceId, reason: z.string() })),
      /** Where every VM goes, when the operator named a host; else placement picks. */
      targetHostId: resourceId.optional(),
    })
    .optional(),
  createdAt: timestamp,
});
export const HostList = z.strictObject({ hosts: z.array(Host) });

export const Network = z.strictObject({
  networkId: resourceId,
  tenantId: z.string(),
  projectId: resourceId,
  name: z.string(),
  cidr: ipv4Cidr,
  region: region.optional(),
  /** Addresses VMs can get: the CIDR less network, gateway and broadcast addresses. */
  capacity: count,
  /** Where placement puts its VMs: spread over hosts, or packed onto those it already runs on. */
  placement: NetworkPlacement,
  createdAt: timestamp,
});
export const NetworkList = page('networks', Network);

export const Vm = z.strictObject({
  vmId: resourceId,
  region: region.optional(),
  tenantId: z.string(),
  projectId: resourceId,
  name: z.string(),
  networkId: resourceId,
  ip: ipv4Address,
  hostId: resourceId,
  /**
   * `provisioning` until its host runs it (meanwhile its image may be copied into the region: see
   * stateReason), then `starting`, `running`, `stopping`, `stopped` or `failed` as its host sees it;
   * `unreachable` while its host is down (nobody can say whether it still runs).
   */
  state: VmState,
  stateReason: z.string().optional(),
  /**
   * What runs it: `qemu` (a real guest booted from its image), `process` (a placeholder process:
   * no guest, its image is not booted) or `none` (its host runs no VMs). Its host's runtime when
   * placed there, then what its host reports; absent when its host never said.
   */
  runtime: VmRuntimeKind.optional(),
  /** What its owner asked for: `POST /vms/{id}/stop` and `/start` set it. */
  powerState: PowerState,
  machineType: MachineType,
  imageId: resourceId.optional(),
  serviceAccountId: resourceId.optional(),
  egress: EgressPolicy.optional(),
  attributes: VmAttributes.optional(),
  diskIds: z.array(resourceId),
  /** The tunnel endpoint (the host's underlay address) and the address slot's version that recorded it. */
  endpoint: z.strictObject({ address: ipv4Address, version: z.int().min(1) }),
  /** Its live migration while one runs (the VM is `migrating`): where it goes and how far it got. */
  migration: z
    .strictObject({
      migrationId,
      phase: MigrationPhase,
      sourceHostId: resourceId,
      targetHostId: resourceId,
      startedAt: timestamp,
      updatedAt: timestamp,
    })
    .optional(),
  /** How its last live migration ended: completed (with QEMU's figures) or aborted (with why). */
  lastMigration: z
    .strictObject({
      migrationId,
      outcome: z.enum(['completed', 'aborted']),
      reason: z.string().optional(),
      sourceHostId: resourceId,
      targetHostId: resourceId,
      startedAt: timestamp,
      endedAt: timestamp,
      downtimeMs: z.number().min(0).optional(),
      totalMs: z.number().min(0).optional(),
    })
    .optional(),
  /** What happens when its host goes down: `wait` (it reads `unreachable` until the host is back) or `restart` elsewhere, once. */
  onHostFailure: OnHostFailure,
  /** Its last restart on another host after its host went down. */
  lastRecovery: HostFailureRecovery.optional(),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export const VmList = page('vms', Vm);

/** What a host at one end of a live migration hears back from its report: the migration as it is now. */
export const MigrationReportAnswer = z.strictObject({
  /** The phase the migration is in after the report; absent once it ended. */
  phase: MigrationPhase.optional(),
  /** How it ended, once it did. */
  outcome: z.enum(['completed', 'aborted']).optional(),
});

/** For the source of a migration in `cut-over`: how far the VM's new endpoint has spread. */
export const MigrationConvergence = z.strictObject({
  migrationId,
  phase: MigrationPhase,
  hostsTotal: count,
  hostsConverged: count,
  converged: z.boolean(),
});

/** What a host's report of a VM's state came to: recorded, or ignored as older than the one held. */
export const VmStateReportAnswer = z.strictObject({ accepted: z.boolean() });

/** How far a VM's current tunnel endpoint has spread: the hosts that need it, and which of them hold it. */
export const VmConvergence = z.strictObject({
  vmId: resourceId,
  hostId: resourceId,
  endpoint: z.strictObject({ address: ipv4Address, version: z.int().min(1) }),
  /** Hosts running a VM of the VM's network: those whose agents must learn the endpoint. */
  hostsTotal: z.int().min(0),
  /** Of those, the hosts whose agents acknowledged this endpoint version or a later one. */
  hostsConverged: z.int().min(0),
  converged: z.boolean(),
  /** Hosts still to acknowledge, the first 50 in id order. */
  pendingHostIds: z.array(resourceId).max(50),
});

export { ForwardingTableResponse as ForwardingTable } from './endpoints.ts';

export const HostKeys = z.strictObject({
  vmId: resourceId,
  keys: z.array(z.strictObject({ keyType: z.string(), publicKey: z.string(), fingerprint: z.string().startsWith('SHA256:'), knownHostsLine: z.string() })),
  publishedAt: timestamp.optional(),
  /** Compact JWS (ES256) by the host key attestation KMS key. */
  attestation: z.string().optional(),
});

export const HostCredentials = z.strictObject({
  hostId: resourceId,
  credentials: z.array(z.strictObject({ serviceAccountId: resourceId, vmIds: z.array(resourceId), credential: z.string(), expiresAt: timestamp })),
});

export { HostVmConfigs } from './vm-config.ts';

export const AllowedSource = z.strictObject({ networkId: resourceId, sourceNetworkId: resourceId, createdAt: timestamp });
export const AllowedSourceList = z.strictObject({ allowedSources: z.array(AllowedSource) });

export const Connection = z.strictObject({
  sourceVmId: resourceId,
  destinationVmId: resourceId,
  destinationIp: ipv4Address,
  /** Where to send the tunnelled traffic: the destination's host. */
  destinationHostAddress: ipv4Address,
  token: z.string(),
  expiresAt: timestamp,
});

/** A revoked network pair: no token is minted for it, and its destination's host refuses those minted before. */
export const PairRevocation = z.strictObject({
  sourceVmId: resourceId,
  destinationVmId: resourceId,
  revokedAt: timestamp,
});
export const PairRevocationList = z.strictObject({ pairRevocations: z.array(PairRevocation) });

export const ServiceAccount = z.strictObject({
  serviceAccountId: resourceId,
  tenantId: z.string(),
  projectId: resourceId,
  name: z.string(),
  createdAt: timestamp,
});
export const ServiceAccountList = page('serviceAccounts', ServiceAccount);

export const ShuffleJob = z.strictObject({
  jobId: resourceId,
  name: z.string(),
  region,
  state: z.enum(['running', 'complete']),
  partitions: z.int().min(1),
  workers: z.array(z.strictObject({ vmId: resourceId, hostId: resourceId.optional(), sent: count.optional(), closed: z.boolean(), received: count })),
  /** Records the workers sent (of those that closed), and records their hosts stored. */
  recordsIn: count,
  recordsOut: count,
  createdAt: timestamp,
  completedAt: timestamp.optional(),
});

export const Project = z.strictObject({
  projectId: resourceId,
  tenantId: z.string(),
  name: z.string(),
  state: z.enum(['active', 'deleting']),
  createdAt: timestamp,
});
export const ProjectList = page('projects', Project);

export const ProjectGraph = z.strictObject({
  projectId: resourceId,
  state: z.enum(['active', 'deleting']),
  nodes: z.array(z.strictObject({ nodeId: z.string(), kind: NodeKind, name: z.string() })),
  /** `owns`: the project owns the node; `uses`: a VM uses a network, a disk, a service account or an image copy. */
  edges: z.array(z.strictObject({ from: z.string(), to: z.string(), kind: z.enum(['owns', 'uses']) })),
});

export const Image = z.strictObject({
  imageId: resourceId,
  tenantId: z.string(),
  name: z.string(),
  sizeBytes: z.int().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** uploading → verifying → available, or failed with a reason. */
  state: z.enum(['uploading', 'verifying', 'available', 'failed']),
  failureReason: z.string().optional(),
  /** Where it was uploaded. */
  region,
  /** Every tenant may describe and launch it (operators upload public images; their tenantId is `public`). */
  public: z.boolean(),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export const ImageList = page('images', Image);

export const ImageWithCopies = Image.extend({
  copies: z.array(
    z.strictObject({
      region,
      state: z.enum(['copying', 'available', 'failed', 'releasing']),
      attempts: count,
      lastError: z.string().optional(),
      failureReason: z.string().optional(),
      updatedAt: timestamp,
    }),
  ),
});

export const CreatedImage = z.strictObject({
  image: Image,
  /** Where to PUT each part of the content, straight to S3; then complete with the parts' ETags. */
  upload: z.strictObject({
    partSize: z.int().min(1),
    expiresInSeconds: z.int().min(1),
    parts: z.array(z.strictObject({ partNumber: z.int().min(1), url: z.url() })),
  }),
});

/** One quota of a tenant in one region: its limit, what the tenant holds, and whether an operator set the limit. */
const QuotaUsage = z.strictObject({ limit: count, used: z.int(), source: z.enum(['default', 'operator']) });

export const Quotas = z.strictObject({
  tenantId: z.string(),
  /** Quotas count what the tenant holds in this region (VMs, disks, networks are regional). */
  region,
  quotas: z.strictObject({ vms: QuotaUsage, disks: QuotaUsage, diskGiB: QuotaUsage, networks: QuotaUsage }),
  /** When an operator last set the tenant's limits, if ever. */
  updatedAt: timestamp.optional(),
});

export const StoragePool = z.strictObject({
  poolId: resourceId,
  region: region.optional(),
  capacityGiB: count,
  iops: count,
  throughputMiBps: count,
  freeGiB: count,
  freeIops: count,
  freeThroughputMiBps: count,
  createdAt: timestamp,
});
export const StoragePoolList = z.strictObject({ storagePools: z.array(StoragePool) });

export const Disk = z.strictObject({
  diskId: resourceId,
  tenantId: z.string(),
  projectId: resourceId,
  name: z.string(),
  sizeGiB: z.int().min(1),
  iops: z.int().min(1),
  throughputMiBps: z.int().min(1),
  poolId: resourceId,
  region: region.optional(),
  state: z.enum(['available', 'attached']),
  attachedTo: resourceId.optional(),
  /** The host whose storage pool folder holds the disk's data (set when first attached): it attaches to VMs on that host only. */
  hostId: resourceId.optional(),
  /** While attached: where the guest sees it, the same wherever the VM runs (its slot on the VM's disk bridge, PCI slot `slot + 1`). */
  slot: z.int().min(0).max(7).optional(),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export const DiskList = page('disks', Disk);

/** Every error: the message names the field and the rule, or what to do. */
/** The OpenAPI description itself. */
export const ApiDescription = z.looseObject({
  openapi: z.literal('3.1.0'),
  info: z.looseObject({ title: z.string(), version: z.string() }),
  paths: z.record(z.string(), z.unknown()),
});

/** A revoked API token: refused everywhere within a minute (the authorizer's cache), until it would have expired. */
export const TokenRevocation = z.strictObject({
  jti: z.string(),
  subject: z.string().optional(),
  reason: z.string().optional(),
  revokedAt: timestamp,
  revokedUntil: timestamp,
});

export const ErrorBody = z.strictObject({ message: z.string() });
