import { z } from 'zod';
import { resourceId } from './identifiers.ts';

/** `https://api.example.com` or `http://10.0.0.5:8080`: a scheme, a host and maybe a port, nothing else. */
export const Origin = z
  .string()
  .max(256)
  .refine((value) => {
    try {
      const url = new URL(value);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value && !url.username;
    } catch {
      return false;
    }
  }, 'must be an origin such as https://api.example.com or http://10.0.0.5:8080 (scheme, host and port only, no trailing slash)');

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

/** The policies of the VMs on one host, for its agent. */
export const HostEgressPolicies = z.strictObject({
  hostId: resourceId,
  policies: z.array(z.strictObject({ vmId: resourceId, egress: EgressPolicy })),
});
export type HostEgressPolicies = z.infer<typeof HostEgressPolicies>;
