import { z } from 'zod';
import { resourceId } from './identifiers.ts';

export const API_TOKEN_ISSUER = 'stratoplane';
export const API_AUDIENCE = 'stratoplane-api';
export const API_TOKEN_TYPE = 'stratoplane-api+jwt';
/* The keys that sign and wrap are found by their aliases, per deployment: keyAlias() in naming.ts. */

/** Host key attestations (alias …/host-key-attestations): a VM's SSH host keys as its host published them, and when. */
export const HOST_KEYS_ATTESTATION_TYPE = 'stratoplane-host-keys+jwt';

/** The encryption context every pair-secret KMS call carries: it ties the ciphertext to its VM and purpose. */
export const pairKeyContext = (vmId: string) => ({ purpose: 'network-pair', vmId });

/**
 * A revoked network pair (source VM -> destination VM), kept on the destination VM by source VM id:
 * while revoked, no token is minted for the pair and its destination host refuses every token of it.
 * The rules are in `tokens/pair-revocations.ts`.
 */
export const PairRevocation = z.strictObject({
  /** When it was revoked (ms since epoch, the control plane's clock). */
  revokedAt: z.int(),
  /** When it was lifted, if it was (ms): tokens issued before `revokedAt` stay refused until they expire. */
  liftedAt: z.int().optional(),
});
export type PairRevocation = z.infer<typeof PairRevocation>;
export const PairRevocations = z.record(resourceId, PairRevocation);
export type PairRevocations = z.infer<typeof PairRevocations>;

/** Hosts' long-term service-account credentials (signed by the key aliased …/host-credentials). */
export const HOST_CREDENTIAL_TYPE = 'stratoplane-host-credential+jwt';
/** Short-term tokens a host agent mints for a VM under a host credential. */
export const VM_TOKEN_TYPE = 'stratoplane-vm-token+jwt';

/**
 * A host's long-term credential for one service account: the control plane (through KMS) lets the
 * host holding the private half of `cnf.jwk` mint tokens for the listed VMs until `exp`.
 */
export const HostCredentialClaims = z.object({
  iss: z.literal(API_TOKEN_ISSUER),
  sa: resourceId,
  tenant: resourceId,
  /** The host's opaque token name, not its id. */
  host: resourceId,
  vms: z.array(resourceId).min(1),
  cnf: z.object({ jwk: z.object({ kty: z.literal('EC'), crv: z.literal('P-256'), x: z.string(), y: z.string() }) }),
  iat: z.int(),
  exp: z.int(),
  jti: z.string(),
});
export type HostCredentialClaims = z.infer<typeof HostCredentialClaims>;

/** A short-term token for a VM's service account, signed by its host's minting key, carrying the host's credential. */
export const VmTokenClaims = z.object({
  iss: z.string().regex(/^host:/),
  sub: resourceId,
  aud: z.string().min(1).max(512),
  vm: resourceId,
  tenant: resourceId,
  iat: z.int(),
  exp: z.int(),
  jti: z.string(),
  cred: z.string(),
});
export type VmTokenClaims = z.infer<typeof VmTokenClaims>;

/**
 * What a bearer token allows. A tenant token carries tenant scopes only, a host token `host`
 * only, an operator token `operator` only: a subject's kind decides which scopes it may hold.
 */
export const Scope = z.enum(['tenant:read', 'tenant:write', 'host', 'operator']);
export type Scope = z.infer<typeof Scope>;

export const PrincipalKind = z.enum(['tenant', 'host', 'operator']);
export type PrincipalKind = z.infer<typeof PrincipalKind>;

export const scopesFor: Record<PrincipalKind, readonly Scope[]> = {
  tenant: ['tenant:read', 'tenant:write'],
  host: ['host'],
  operator: ['operator'],
};

/** `tenant:acme`, `host:host-1`, `operator:alice`. */
export const Subject = z
  .string()
  .regex(/^(tenant|host|operator):[a-z0-9][a-z0-9-]{0,62}$/, 'must be tenant:ID, host:ID or operator:NAME')
  .transform((text) => text as `${PrincipalKind}:${string}`);
export type Subject = z.infer<typeof Subject>;

export interface Principal {
  kind: PrincipalKind;
  /** Tenant id, host id or operator name, by kind. */
  id: string;
  scopes: readonly Scope[];
}

/** Space-separated scopes, as OAuth 2.0 writes them. */
export const ScopeList = z
  .string()
  .max(256)
  .transform((text, context) => {
    const scopes = text.split(' ').filter(Boolean);
    for (const scope of scopes) {
      if (!Scope.safeParse(scope).success) context.addIssue({ code: 'custom', message: `unknown scope ${scope}` });
    }
    return [...new Set(scopes)] as Scope[];
  });

/** Claims of an API bearer token (a JWT signed by the API token KMS key). */
export const ApiTokenClaims = z.object({
  iss: z.literal(API_TOKEN_ISSUER),
  aud: z.literal(API_AUDIENCE),
  sub: Subject,
  scope: ScopeList,
  iat: z.int(),
  exp: z.int(),
  jti: z.string().min(8).max(64),
});
export type ApiTokenClaims = z.infer<typeof ApiTokenClaims>;

/** A principal from a subject and its scopes, or an error saying which scope does not fit the subject. */
export function principalOf(sub: Subject, scopes: readonly Scope[]): Principal {
  const separator = sub.indexOf(':');
  const kind = sub.slice(0, separator) as PrincipalKind;
  const allowed = scopesFor[kind];
  const foreign = scopes.filter((scope) => !allowed.includes(scope));
  if (foreign.length > 0) throw new Error(`a ${kind} cannot hold scope ${foreign.join(', ')}`);
  if (scopes.length === 0) throw new Error('a token needs at least one scope');
  return { kind, id: sub.slice(separator + 1), scopes };
}
