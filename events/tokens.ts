import { z } from 'zod';

export const API_TOKEN_ISSUER = 'stratoplane';
export const API_AUDIENCE = 'stratoplane-api';
export const API_TOKEN_TYPE = 'stratoplane-api+jwt';
/** The KMS alias of the key that signs API tokens, in every deployment. */
export const API_TOKEN_KEY_ALIAS = 'alias/stratoplane/api-tokens';

/** Signs host key attestations: a VM's SSH host keys as its host published them, and when. */
export const HOST_KEY_ATTESTATION_KEY_ALIAS = 'alias/stratoplane/host-key-attestations';
export const HOST_KEYS_ATTESTATION_TYPE = 'stratoplane-host-keys+jwt';

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
