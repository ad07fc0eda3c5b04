import { isIP } from 'node:net';
import { z } from 'zod';
import { ipv4Cidr, resourceId } from './identifiers.ts';
import { HostShuffleJob } from './shuffle.ts';

/**
 * `https://api.example.com` or `http://svc.example.net:8080`: a scheme, a DNS name and maybe a
 * port, nothing else. Names only: the bridge checks the addresses a name resolves to when it
 * connects, and an IP literal or `localhost` names the host itself or a path around that check.
 */
export const Origin = z
  .string()
  .max(256)
  .superRefine((value, context) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return void context.addIssue({ code: 'custom', message: 'must be an origin such as https://api.example.com (scheme, host and port only, no trailing slash)' });
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    // Checked on the parsed name: `http://2130706433` and `http://0x7f.1` are IPv4 literals too.
    if (isIP(host)) return void context.addIssue({ code: 'custom', message: `IP literals are refused (${url.hostname}): name the service by its DNS name` });
    if (host === 'localhost' || host.endsWith('.localhost')) return void context.addIssue({ code: 'custom', message: `localhost and *.localhost are refused (${url.hostname}): they name the host itself` });
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.origin !== value || url.username || url.password) {
      context.addIssue({ code: 'custom', message: 'must be an origin such as https://api.example.com (scheme, host and port only, no trailing slash)' });
    }
  });

/**
 * What a VM may reach through its bridge's outbound proxy: only the listed origins, at most
 * `requestsPerSecond` on average with bursts of `burst`. A VM without a policy reaches nothing.
 */
export const EgressPolicy = z.strictObject({
  allow: z.array(Origin).max(50),
  requestsPerSecond: z.int().min(1).max(10_000).default(50),
  burst: z.int().min(1).max(10_000).default(100),
});
export type EgressPolicy = z.infer<typeof EgressPolicy>;

/**
 * A VM's custom metadata, served by its metadata server at `instance/attributes/<key>` (as GCE's
 * instance metadata): keys of letters, digits, `-` and `_`, values up to 4 KiB, 32 KiB in all.
 */
export const VmAttributes = z
  .record(z.string(), z.string().max(4096))
  .superRefine((attributes, context) => {
    // Checked here rather than on the record's key, so the message names the key and says what is wrong.
    for (const key of Object.keys(attributes)) {
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(key)) context.addIssue({ code: 'custom', path: [key], message: 'keys are 1-64 letters, digits, - or _' });
    }
  })
  .refine((attributes) => Object.keys(attributes).length <= 64, 'at most 64 attributes')
  .refine((attributes) => JSON.stringify(attributes).length <= 32 * 1024, 'at most 32 KiB of attributes in all');
export type VmAttributes = z.infer<typeof VmAttributes>;

export const PutVmAttributesRequest = z.strictObject({ attributes: VmAttributes });
export type PutVmAttributesRequest = z.infer<typeof PutVmAttributesRequest>;

/** What the agent of one host needs to serve its VMs' bridges: their egress policies and attributes. */
export const HostVmConfigs = z.strictObject({
  hostId: resourceId,
  vms: z.array(z.strictObject({ vmId: resourceId, egress: EgressPolicy.optional(), attributes: VmAttributes.optional() })),
  /** Shuffle jobs the host's VMs work in. */
  shuffleJobs: z.array(HostShuffleJob),
  /** Private ranges the deployment's operator opened to VMs' egress (the stack's `egressOpenCidrs`); refused otherwise. */
  egressOpenCidrs: z.array(ipv4Cidr),
});
export type HostVmConfigs = z.infer<typeof HostVmConfigs>;
