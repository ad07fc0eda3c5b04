import { z } from 'zod';
import { ipv4Address, resourceId } from './identifiers.ts';

/**
 * A live migration's phases, as the control plane records them: `preparing` (the destination host
 * starts the VM waiting for its guest), `transferring` (it listens; the source sends the guest's
 * memory), `cut-over` (the guest runs at the destination, whose address is the VM's endpoint now;
 * the hosts that need it are learning it, the source forwarding what still reaches it), then
 * `cleaning-up` (every host that needs it acknowledged it: the source lets go of the VM).
 */
export const MigrationPhase = z.enum(['preparing', 'transferring', 'cut-over', 'cleaning-up']);
export type MigrationPhase = z.infer<typeof MigrationPhase>;

export const migrationId = z.string().regex(/^mig-[0-9a-f]{12}$/);

/** A live migration under way, as the VM's record holds it. */
export const MigrationRecord = z.object({
  migrationId,
  phase: MigrationPhase,
  sourceHostId: resourceId,
  sourceAddress: ipv4Address,
  targetHostId: resourceId,
  targetAddress: ipv4Address,
  /** Each end's live-migration CA certificate (PEM) as its host registered it when the migration started: each checks the other's. */
  sourceCertificate: z.string().optional(),
  targetCertificate: z.string().optional(),
  /** Where the destination's QEMU listens for the guest (from `transferring` on). */
  port: z.int().min(1).max(65_535).optional(),
  /** QEMU's figures, once the source reported them. */
  downtimeMs: z.number().min(0).optional(),
  totalMs: z.number().min(0).optional(),
  startedAt: z.string(),
  updatedAt: z.string(),
});
export type MigrationRecord = z.infer<typeof MigrationRecord>;

/** How a VM's last live migration ended. */
export const MigrationOutcome = z.object({
  migrationId,
  outcome: z.enum(['completed', 'aborted']),
  /** Why it was aborted. */
  reason: z.string().optional(),
  sourceHostId: resourceId,
  targetHostId: resourceId,
  startedAt: z.string(),
  endedAt: z.string(),
  /** QEMU's figures, when the guest moved: its pause (ms) and the whole transfer (ms). */
  downtimeMs: z.number().min(0).optional(),
  totalMs: z.number().min(0).optional(),
});
export type MigrationOutcome = z.infer<typeof MigrationOutcome>;

/**
 * `PUT /hosts/{hostId}/vms/{vmId}/migration`: what a host at one end of a migration saw. The
 * destination says `listening` (with its port) and `resumed` (the guest runs there: this commits
 * the VM's new endpoint at once); the source says `converged` (every host that needs the new
 * endpoint holds it; with QEMU's figures) and `cleaned` (it let go of the VM); either says `failed` before the
 * cut-over, which aborts the migration with its reason.
 */
export const ReportMigrationRequest = z.discriminatedUnion('event', [
  z.strictObject({ migrationId, event: z.literal('listening'), port: z.int().min(1).max(65_535) }),
  z.strictObject({ migrationId, event: z.literal('resumed') }),
  z.strictObject({
    migrationId,
    event: z.literal('converged'),
    /** QEMU's figures at the source. */
    downtimeMs: z.number().min(0).max(3_600_000).optional(),
    totalMs: z.number().min(0).max(3_600_000).optional(),
  }),
  z.strictObject({ migrationId, event: z.literal('cleaned') }),
  z.strictObject({ migrationId, event: z.literal('failed'), reason: z.string().min(1).max(2048) }),
]);
export type ReportMigrationRequest = z.infer<typeof ReportMigrationRequest>;

/** What a host needs to play its part in a VM's migration (in its VM configurations). */
export const HostMigrationRole = z.strictObject({
  migrationId,
  role: z.enum(['source', 'target']),
  phase: MigrationPhase,
  /** The host at the other end, and its underlay address. */
  peerHostId: resourceId,
  peerAddress: ipv4Address,
  /** The other host's live-migration CA certificate (PEM): the only host, beside this one, the move's TLS trusts. */
  peerCertificate: z.string().max(8192).optional(),
  /** The destination's port, once it listens. */
  port: z.int().min(1).max(65_535).optional(),
  /** The VM's network and address (the destination runs it before its endpoint says so). */
  networkId: resourceId,
  ip: ipv4Address,
});
export type HostMigrationRole = z.infer<typeof HostMigrationRole>;
