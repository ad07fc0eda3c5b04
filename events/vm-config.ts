import { isIP } from 'node:net';
import { z } from 'zod';
import { HostMigrationRole } from './migrations.ts';
import { ipv4Cidr, resourceId } from './identifiers.ts';
import { HostShuffleJob } from './shuffle.ts';
import { PairRevocations } from './tokens.ts';
import { MachineType, PowerState } from './vm-lifecycle.ts';

/**
 * `https://api.example.com` or `http://svc.example.net:8080`: a scheme, a DNS name and maybe a
 * port, nothing else. Names only: the bridge checks the addresses a name resolves to when it
 * connects, and an IP literal or `localhost` names the host itself or a path around that check.
 */
/** The form of an origin the API takes: a lowercase DNS name (last label starts with a letter: never an IP literal) and maybe a port. */
const ORIGIN_FORM =
  '^https?://([a-z0-9_]([a-z0-9_-]*[a-z0-9_])?\\.)*[a-z]([a-z0-9-]*[a-z0-9])?(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?$';
const ORIGIN_PATTERN = new RegExp(ORIGIN_FORM);

export const Origin = z
  .string()
  .max(256)
  .superRefine((value, context) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return void context.addIssue({
        code: 'custom',
        message: 'must be an origin such as https://api.example.com (scheme, host and port only, no trailing slash)',
      });
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // Checked on the parsed name: `http://2130706433` and `http://0x7f.1` are IPv4 literals too.
    if (isIP(host)) return void context.addIssue({ code: 'custom', message: `IP literals are refused (${url.hostname}): name the service by its DNS name` });
    if (host === 'localhost' || host.endsWith('.localhost'))
      return void context.addIssue({ code: 'custom', message: `localhost and *.localhost are refused (${url.hostname}): they name the host itself` });
    // The URL standard lets through host names DNS has no place for (`https://l*`): the form is checked as well.
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== value || url.username || url.password || !ORIGIN_PATTERN.test(value)) {
      context.addIssue({ code: 'custom', message: 'must be an origin such as https://api.example.com (scheme, host and port only, no trailing slash)' });
    }
  })
  .meta({
    // The form as a pattern (lowercase DNS name whose last label starts with a letter, so never an IP literal); what a
    // pattern cannot say, the description does.
    pattern: ORIGIN_FORM,
    description:
      'An origin: http or https, a lowercase DNS name and maybe a port, nothing else (no path, no trailing slash, no user), as the URL standard serializes it (so no default port: not :443 with https, not :80 with http). IP literals, localhost and *.localhost are refused.',
  });

/**
 * What a VM may reach through its bridge's outbound proxy: only the listed origins, at most
 * `requestsPerSecond` on average with bursts of `burst`. A VM without a policy reaches nothing.
 */
export const EgressPolicy = z.strictObject({
  allow: z.array(Origin).max(50).meta({ description: 'Origins the VM may reach, at most 50.' }),
  requestsPerSecond: z.int().min(1).max(10_000).default(50),
  burst: z.int().min(1).max(10_000).default(100),
});
export type EgressPolicy = z.infer<typeof EgressPolicy>;

const ATTRIBUTE_KEY = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A VM's custom metadata, served by its metadata server at `instance/attributes/<key>` (as GCE's
 * instance metadata): keys of letters, digits, `-` and `_`, values up to 4 KiB, 32 KiB in all.
 */
export const VmAttributes = z
  .record(z.string(), z.string().max(4096))
  .superRefine((attributes, context) => {
    // Checked here rather than on the record's key, so the message names the key and says what is wrong.
    for (const key of Object.keys(attributes)) {
      if (!ATTRIBUTE_KEY.test(key)) context.addIssue({ code: 'custom', path: [key], message: 'keys are 1-64 letters, digits, - or _' });
    }
  })
  .refine((attributes) => Object.keys(attributes).length <= 64, 'at most 64 attributes')
  .refine((attributes) => JSON.stringify(attributes).length <= 32 * 1024, 'at most 32 KiB of attributes in all')
  .meta({
    propertyNames: { pattern: ATTRIBUTE_KEY.source },
    maxProperties: 64,
    description:
      'Custom metadata: at most 64 keys of 1-64 letters, digits, - or _; values up to 4096 characters; at most 32 KiB (32768 characters) in all, counted as the JSON object.',
  });
export type VmAttributes = z.infer<typeof VmAttributes>;

export const PutVmAttributesRequest = z.strictObject({ attributes: VmAttributes });
export type PutVmAttributesRequest = z.infer<typeof PutVmAttributesRequest>;

/**
 * A disk attached to a VM, as its host plugs it in: the file `<diskId>.raw` in its storage pool's
 * folder, the size it has (it only grows) and the limits QEMU enforces on it (reads and writes
 * together, as EBS counts them). The guest sees it as a virtio disk whose serial is the disk id.
 */
export const LaunchDisk = z.strictObject({
  diskId: z.string().regex(/^disk-[0-9a-f]{12}$/),
  poolId: resourceId,
  sizeGiB: z.int().min(1),
  iops: z.int().min(1),
  throughputMiBps: z.int().min(1),
  /** Where the guest sees it (its slot on the VM's disk bridge), the same on every host that runs the VM. */
  slot: z.int().min(0).max(7).optional(),
});
export type LaunchDisk = z.infer<typeof LaunchDisk>;

/**
 * How the host runs a VM: its size, what the tenant asked for (running or stopped), its name and
 * its image. `bootGeneration` rises with each start of a stopped or failed VM and each reboot: a
 * guest booted for a lower one is booted again. Absent while the VM cannot start yet (its image's
 * copy into the region is not verified).
 */
export const VmLaunchSpec = z.strictObject({
  powerState: PowerState,
  bootGeneration: z.int().min(0),
  machineType: MachineType,
  memoryMiB: z.int().min(64),
  vcpus: z.int().min(1),
  /** The VM's name as a host name (what the guest calls itself). */
  hostname: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/),
  /** The image to boot, with a short-lived URL to fetch it from the region's bucket; none: the host's runtime needs none (process runtime). */
  image: z
    .strictObject({
      imageId: resourceId,
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      sizeBytes: z.int().min(1),
      url: z.url(),
    })
    .optional(),
  /** Its attached disks, by disk id (at most 8: the hot-plug slots of a guest). */
  disks: z.array(LaunchDisk).max(8).optional(),
});
export type VmLaunchSpec = z.infer<typeof VmLaunchSpec>;

/** What the agent of one host needs to serve its VMs' bridges: their egress policies and attributes. */
export const HostVmConfigs = z.strictObject({
  hostId: resourceId,
  vms: z.array(
    z.strictObject({
      vmId: resourceId,
      /** Whose VM it is: the bid relay takes requests naming it only from that tenant's exchanges. */
      tenantId: resourceId,
      /** Its service account: the host fetches credentials only while one of its VMs has one. */
      serviceAccountId: resourceId.optional(),
      egress: EgressPolicy.optional(),
      attributes: VmAttributes.optional(),
      launch: VmLaunchSpec.optional(),
      /** The host's part in the VM's live migration, while one runs: a destination's VMs include those coming to it. */
      migration: HostMigrationRole.optional(),
    }),
  ),
  /**
   * The wrapped pair secrets of the VMs the host runs (not those still on their way to it):
   * ciphertexts only, the agent decrypts each with KMS under the VM's encryption context.
   */
  pairKeys: z.array(
    z.strictObject({
      vmId: resourceId,
      ciphertext: z.string(),
      /** Pairs to this VM its host must refuse tokens of, by source VM id (rules: `tokens/pair-revocations.ts`). */
      pairRevocations: PairRevocations.optional(),
      /** The networks whose VMs may open pairs to this VM (its own network's allowed sources). */
      allowedSourceNetworks: z.array(resourceId).optional(),
    }),
  ),
  /** Shuffle jobs the host's VMs work in. */
  shuffleJobs: z.array(HostShuffleJob),
  /** Private ranges the deployment's operator opened to VMs' egress (the stack's `egressOpenCidrs`); refused otherwise. */
  egressOpenCidrs: z.array(ipv4Cidr),
});
export type HostVmConfigs = z.infer<typeof HostVmConfigs>;
