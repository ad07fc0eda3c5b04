import { randomBytes } from 'node:crypto';
import { API_TOKEN_ISSUER, HOST_CREDENTIAL_TYPE, HostCredentialClaims } from '#events/tokens.ts';
import type { P256PublicJwk } from '#events/api.ts';
import { decodeJws, TokenError, verifyEs256, type JwsSigner, type PublicKeySource } from './jws.ts';

/**
 * At most an hour: a host that is taken out of service, or that a VM left (migrated away or
 * deleted), obtains no new credential for it, so tokens it mints for that VM stop verifying
 * within this. Agents renew well before (see SECRETS_RENEWAL_MS in host-agent/agent.ts).
 */
export const HOST_CREDENTIAL_SECONDS = 3600;
/** The shortest lifetime a host may ask for: enough to mint one token. */
export const MIN_HOST_CREDENTIAL_SECONDS = 5;

export interface IssueHostCredential {
  serviceAccountId: string;
  tenantId: string;
  /** The host's opaque token name (hostTokenRef), never its id: the credential travels in its VMs' tokens. */
  hostRef: string;
  vmIds: readonly string[];
  hostPublicKey: P256PublicJwk;
  /** Shorter than HOST_CREDENTIAL_SECONDS if asked (tests, a cautious host); never longer. */
  lifetimeSeconds?: number;
  now?: number;
}

/** Signs a host's long-term credential for one service account, bound to the host's minting key. */
export async function issueHostCredential(signer: JwsSigner, request: IssueHostCredential): Promise<{ credential: string; claims: HostCredentialClaims }> {
  const iat = Math.floor((request.now ?? Date.now()) / 1000);
  const lifetime = Math.max(MIN_HOST_CREDENTIAL_SECONDS, Math.min(HOST_CREDENTIAL_SECONDS, Math.floor(request.lifetimeSeconds ?? HOST_CREDENTIAL_SECONDS)));
  const claims: HostCredentialClaims = {
    iss: API_TOKEN_ISSUER,
    sa: request.serviceAccountId,
    tenant: request.tenantId,
    host: request.hostRef,
    vms: [...request.vmIds].sort(),
    cnf: { jwk: request.hostPublicKey },
    iat,
    exp: iat + lifetime,
    jti: randomBytes(12).toString('base64url'),
  };
  return { credential: await signer.sign(HOST_CREDENTIAL_TYPE, claims), claims };
}

/** Checks a host credential against the trusted KMS credential keys. */
export async function verifyHostCredential(credential: string, keys: PublicKeySource, now: number): Promise<HostCredentialClaims> {
  const jws = decodeJws(credential);
  if (jws.header.typ !== HOST_CREDENTIAL_TYPE) throw new TokenError(`credential typ must be ${HOST_CREDENTIAL_TYPE}`);
  if (!(await keys.isTrusted(jws.header.kid))) throw new TokenError(`credential key ${jws.header.kid} is not trusted`);
  if (!verifyEs256(jws.signingInput, jws.signature, await keys.get(jws.header.kid))) throw new TokenError('credential signature is bad');
  const parsed = HostCredentialClaims.safeParse(jws.payload);
  if (!parsed.success) throw new TokenError(`credential claims are malformed: ${parsed.error.issues[0]?.path.join('.')}`);
  if (parsed.data.exp <= now / 1000) throw new TokenError('credential expired');
  if (parsed.data.exp - parsed.data.iat > HOST_CREDENTIAL_SECONDS) throw new TokenError('credential lifetime is longer than allowed');
  return parsed.data;
}
