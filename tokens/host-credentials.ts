import { randomBytes } from 'node:crypto';
import { API_TOKEN_ISSUER, HOST_CREDENTIAL_TYPE, HostCredentialClaims } from '#events/tokens.ts';
import type { P256PublicJwk } from '#events/api.ts';
import { decodeJws, TokenError, verifyEs256, type JwsSigner, type PublicKeySource } from './jws.ts';

/** Hours, not days: a host that is taken out of service stops minting within this. */
export const HOST_CREDENTIAL_SECONDS = 6 * 3600;

export interface IssueHostCredential {
  serviceAccountId: string;
  tenantId: string;
  hostId: string;
  vmIds: readonly string[];
  hostPublicKey: P256PublicJwk;
  now?: number;
}

/** Signs a host's long-term credential for one service account, bound to the host's minting key. */
export async function issueHostCredential(signer: JwsSigner, request: IssueHostCredential): Promise<{ credential: string; claims: HostCredentialClaims }> {
  const iat = Math.floor((request.now ?? Date.now()) / 1000);
  const claims: HostCredentialClaims = {
    iss: API_TOKEN_ISSUER,
    sa: request.serviceAccountId,
    tenant: request.tenantId,
    host: request.hostId,
    vms: [...request.vmIds].sort(),
    cnf: { jwk: request.hostPublicKey },
    iat,
    exp: iat + HOST_CREDENTIAL_SECONDS,
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
