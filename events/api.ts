import { z } from 'zod';
import { clientToken, ipv4Cidr, ipv4CidrPattern, resourceId, underlayAddress } from './identifiers.ts';
import { AcceleratorKind, AutoPlacement, MachineType, NetworkPlacement, OnHostFailure, VmRuntimeKind } from './vm-lifecycle.ts';
import { VmAttributes } from './vm-config.ts';

export const RegisterHostRequest = z.strictObject({
  hostId: resourceId,
  /** Underlay address other hosts use as the tunnel endpoint for this host's VMs: unicast, and no other host's in its region. */
  address: underlayAddress,
  /** Number of VMs the host can run. */
  capacity: z.int().min(1).max(10_000),
  /**
   * What the host runs VMs with (its agent's `--runtime`, as far as it could run here): `none` keeps
   * placement off it. Absent (an operator's registration, an older agent): as before, any VM may
   * be placed there. Registering again with another value changes it.
   */
  vmRuntime: VmRuntimeKind.optional().describe(
    'What the host runs VMs with: qemu (real guests), process (a placeholder process per VM, no guest) or none (placement never puts a VM there). Absent: unknown, taken as able to run VMs. Registering again with another value changes it.',
  ),
  /** With `vmRuntime: qemu` only: KVM or TCG. */
  accelerator: AcceleratorKind.optional().describe('With vmRuntime qemu only: kvm (hardware virtualization) or tcg (emulation).'),
  /** With `vmRuntime: qemu` only: its agent moves guests live, to and from other such hosts (it runs them in a host namespace). */
  liveMigration: z
    .boolean()
    .optional()
    .describe(
      'With vmRuntime qemu only: the host moves running guests live, to and from other such hosts. Absent or false: a guest moves by booting again at its destination.',
    ),
  /**
   * `off`: placement never chooses the host; it takes only VMs created on it by name, and guests
   * moved to it by name (EC2 Dedicated Hosts' auto-placement off). Registering again with another
   * value changes it; leaving it out changes nothing (absent on a new host: `on`).
   */
  autoPlacement: AutoPlacement.optional().describe(
    'off: placement never chooses this host; it takes only VMs created on it, and guests moved to it, by name (hostId, targetHostId). Absent on a new host: on. Registering again with another value changes it; leaving it out changes nothing.',
  ),
  /** Required with `liveMigration`: the CA certificate of the host's TLS identity in live migrations. */
  migrationCertificate: z
    .string()
    .max(8192)
    .regex(/^-----BEGIN CERTIFICATE-----\r?\n[\s\S]+\r?\n-----END CERTIFICATE-----\s*$/, 'a PEM certificate')
    .optional()
    .describe(
      "Required with liveMigration: the PEM certificate of the host's own live-migration CA (a CA certificate, valid now). Guests move only in TLS, and each end of a move trusts the other's CA as registered here, no other.",
    ),
});
export type RegisterHostRequest = z.infer<typeof RegisterHostRequest>;

export const CreateNetworkRequest = z.strictObject({
  name: z.string().min(1).max(128),
  /** The project that owns it; the tenant's default project when absent. */
  projectId: resourceId.optional(),
  /** Prefix length /16 to /28: larger networks than /16 are not offered. */
  cidr: ipv4Cidr
    .refine((cidr) => {
      const prefix = Number(cidr.split('/')[1]);
      return prefix >= 16 && prefix <= 28;
    }, 'prefix length must be between /16 and /28')
    // JSON Schema cannot compare numbers inside a string: the pattern of ipv4Cidr with the prefix narrowed to the same 16-28.
    .meta({ pattern: ipv4CidrPattern('(1[6-9]|2[0-8])'), description: 'An IPv4 CIDR with a prefix length from /16 to /28, such as 10.0.0.0/24.' }),
  /**
   * Where placement puts the network's VMs: `spread` (the default) over as many hosts as the fleet
   * allows, as EC2 does; `pack` onto hosts that already run VMs of the network while one has room.
   */
  placement: NetworkPlacement.optional().describe(
    "Where placement puts the network's VMs: spread (the default) over as many hosts as the fleet allows, so that one host's failure reaches few of them; pack onto hosts that already run VMs of the network while one of them has room, so that fewer hosts carry the network (each endpoint change reaches fewer hosts, and traffic between VMs on one host never leaves it). Fixed at creation.",
  ),
  clientToken: clientToken.optional(),
});
export type CreateNetworkRequest = z.infer<typeof CreateNetworkRequest>;

export const CreateVmRequest = z.strictObject({
  name: z.string().min(1).max(128),
  networkId: resourceId,
  /**
   * Operators only (scope `operator`): run the VM on this host. Tenants do not pick physical hosts:
   * a tenant token that names one is refused (403); placement picks a host with room.
   */
  hostId: resourceId
    .optional()
    .describe(
      'Operators only (scope operator): the host to run the VM on. Tenants do not pick hosts: a tenant token that sends one is refused (403); leave it out and placement picks a host with room.',
    ),
  /** Operators only, and required with an operator token: the tenant the VM is created for. */
  tenantId: resourceId.optional().describe('Operators only, and required with an operator token: the tenant the VM is created for.'),
  /**
   * Anti-affinity between a tenant's own VMs: placement keeps the new VM off every host that runs
   * one of these VMs (the caller's), or refuses (409) when no host with room is left.
   */
  spreadFrom: z
    .array(resourceId)
    .min(1)
    .max(16)
    .optional()
    .describe(
      "Anti-affinity between the tenant's own VMs: placement keeps this VM off every host that runs one of these VMs (409 when no other host has room).",
    ),
  /**
   * The image the VM boots. An image uploaded in another region is copied here first: the VM is
   * `provisioning` until the copy is verified (or `failed`, with the reason), then its host boots it.
   */
  imageId: resourceId.optional(),
  /** Its size (memory, vCPUs): s1.nano when absent. */
  machineType: MachineType.optional(),
  /** Custom metadata its guest reads at boot from its metadata server (`instance/attributes/`), as GCE's metadata at create. */
  attributes: VmAttributes.optional().describe(
    "Custom metadata the guest reads at boot from its metadata server (instance/attributes/<key>), as GCE's instance metadata; later changed with PUT /vms/{vmId}/attributes.",
  ),
  onHostFailure: OnHostFailure.optional().describe(
    'What happens when its host goes down: wait (default: it reads unreachable until the host is back) or restart (once, on another healthy host, from its image; a VM with disks always waits).',
  ),
  clientToken: clientToken.optional(),
});
export type CreateVmRequest = z.infer<typeof CreateVmRequest>;

/** `{}` asks placement for another host with room; naming the host is for operators. */
export const MigrateVmRequest = z.strictObject({
  /**
   * Operators only (scope `operator`): the host to move the VM to. Tenants leave it out (a tenant
   * token that names one is refused, 403) and placement picks another host with room.
   */
  targetHostId: resourceId
    .optional()
    .describe(
      'Operators only (scope operator): the host to move the VM to. Tenants leave it out (a tenant token that sends one is refused, 403): placement picks another host with room.',
    ),
  /** As in create: placement keeps the VM off the hosts of these VMs of the caller's. */
  spreadFrom: z.array(resourceId).min(1).max(16).optional().describe("As in create: placement keeps the VM off the hosts of these VMs of the tenant's."),
});
export type MigrateVmRequest = z.infer<typeof MigrateVmRequest>;

/** `{}` (or no body) lets placement pick each VM's new host, as for a migration without one. */
export const DrainHostRequest = z.strictObject({
  /** Every VM goes to this host (one with auto-placement off, kept for such moves, say), not where placement would put it. */
  targetHostId: resourceId
    .optional()
    .describe('Every VM moves to this host instead of where placement would put it (a host with auto-placement off, say); kept for the whole drain.'),
});
export type DrainHostRequest = z.infer<typeof DrainHostRequest>;

/**
 * What a host agent has applied to its forwarding table: for each VM, the highest endpoint
 * version it now holds. Agents send these in batches; they make a migration's progress visible.
 */
export const AcknowledgeEndpointsRequest = z.strictObject({
  acks: z
    .array(z.strictObject({ vmId: resourceId, version: z.int().min(1) }))
    .min(1)
    .max(100),
});
export type AcknowledgeEndpointsRequest = z.infer<typeof AcknowledgeEndpointsRequest>;

/** What a host agent forwards for a VM it runs: the VM's SSH host public keys, one `.pub` line each. */
export const PublishHostKeysRequest = z.strictObject({
  keys: z
    .array(
      z.string().min(1).max(8192).meta({
        pattern: '^\\s*(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa)\\s+[A-Za-z0-9+/]+={0,2}(\\s.*)?$',
        description:
          'One OpenSSH public key line, `<type> <base64 key blob> [comment]`: the blob must be a public key of that type in SSH wire format (an ssh-ed25519 key is 32 bytes); the comment is dropped.',
      }),
    )
    .min(1)
    .max(8),
});
export type PublishHostKeysRequest = z.infer<typeof PublishHostKeysRequest>;

export const CreateServiceAccountRequest = z.strictObject({
  name: z.string().min(1).max(128),
  projectId: resourceId.optional(),
});
export type CreateServiceAccountRequest = z.infer<typeof CreateServiceAccountRequest>;

export const AttachServiceAccountRequest = z.strictObject({
  serviceAccountId: resourceId,
});
export type AttachServiceAccountRequest = z.infer<typeof AttachServiceAccountRequest>;

/** A P-256 public key as a JWK: the host agent's token-minting key, bound into its credentials. */
export const P256PublicJwk = z.strictObject({
  kty: z.literal('EC'),
  crv: z.literal('P-256'),
  x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes, base64url'),
  y: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be 32 bytes, base64url'),
});
export type P256PublicJwk = z.infer<typeof P256PublicJwk>;

export const IssueHostCredentialsRequest = z.strictObject({
  publicKey: P256PublicJwk,
  /** A shorter lifetime than the default hour (5…3600 s): a cautious host, or a test that waits for expiry. */
  lifetimeSeconds: z.int().min(5).max(3600).optional(),
});
export type IssueHostCredentialsRequest = z.infer<typeof IssueHostCredentialsRequest>;

export const RequestConnectionRequest = z.strictObject({
  destinationVmId: resourceId,
});
export type RequestConnectionRequest = z.infer<typeof RequestConnectionRequest>;

/** Asked of a destination host agent (on its local interface) before a new flow reaches one of its VMs. */
export const VerifyConnectionRequest = z.strictObject({
  destinationVmId: resourceId,
  token: z.string().min(1).max(2048),
});
export type VerifyConnectionRequest = z.infer<typeof VerifyConnectionRequest>;

export const ListQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  nextToken: z.string().max(2048).optional().describe('The nextToken of the previous page, passed back unchanged; any other value is refused (400).'),
});

export const ListImagesQuery = ListQuery.extend({
  owner: z
    .enum(['self', 'public'])
    .default('self')
    .describe("Whose images: the caller's own (self, the default) or the public ones every tenant may launch. Operators list the public ones."),
});

export const ListVmsQuery = ListQuery.extend({
  networkId: resourceId.optional().describe("Tenants only: the tenant's VMs on this network. An operator lists by hostId alone (400 with networkId)."),
  /** Operators only, and required with an operator token: the VMs of every tenant on this host. */
  hostId: resourceId
    .optional()
    .describe("Operators only, and required with an operator token: every tenant's VMs on this host. A tenant token that sends it is refused (403)."),
});
export type ListVmsQuery = z.infer<typeof ListVmsQuery>;

/** What an operator revokes: a token (its id and expiry are read from it), or a token's id alone (`jti`, as issue-token printed it). */
export const RevokeTokenRequest = z
  .strictObject({
    token: z
      .string()
      .min(20)
      .max(4096)
      .meta({
        pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$',
        description:
          'The token, a compact JWS as issue-token printed it: its header (ES256, with typ and kid) and its payload (with jti) must be base64url JSON; the signature is not checked, revoking a forged token revokes its jti alone.',
      })
      .optional(),
    jti: z
      .string()
      .regex(/^[A-Za-z0-9_-]{8,64}$/, 'must be a token id as issue-token prints it')
      .optional(),
    reason: z.string().min(1).max(500).optional(),
  })
  .refine((body) => (body.token === undefined) !== (body.jti === undefined), 'give the token or its jti, one of the two')
  .meta({ oneOf: [{ required: ['token'] }, { required: ['jti'] }], description: 'The token or its jti: exactly one of the two.' });
export type RevokeTokenRequest = z.infer<typeof RevokeTokenRequest>;
