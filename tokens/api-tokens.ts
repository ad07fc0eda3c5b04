import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { API_AUDIENCE, API_TOKEN_ISSUER, API_TOKEN_TYPE, ApiTokenClaims, principalOf, type Principal, type Scope, type Subject } from '#events/tokens.ts';
import { decodeJws, TokenError, verifyEs256, type JwsSigner, type PublicKeySource } from './jws.ts';

/** Clock skew tolerated between the issuer and the verifier. */
const LEEWAY_SECONDS = 60;
/** No API token outlives this, however it was asked for: a leaked token must expire. */
export const MAX_API_TOKEN_SECONDS = 90 * 24 * 3600;

export interface IssueApiToken {
  subject: Subject;
  scopes: readonly Scope[];
  ttlSeconds: number;
  now?: number;
}

export interface IssuedToken {
  token: string;
  claims: ApiTokenClaims;
}

/** Issues an API bearer token; refuses scopes that do not fit the subject's kind. */
export async function issueApiToken(signer: JwsSigner, request: IssueApiToken): Promise<IssuedToken> {
  if (!Number.isInteger(request.ttlSeconds) || request.ttlSeconds < 60 || request.ttlSeconds > MAX_API_TOKEN_SECONDS) {
    throw new Error(`ttl must be between 60 seconds and ${MAX_API_TOKEN_SECONDS / 86_400} days`);
  }
  principalOf(request.subject, request.scopes);
  const iat = Math.floor((request.now ?? Date.now()) / 1000);
  const claims: ApiTokenClaims = {
    iss: API_TOKEN_ISSUER,
    aud: API_AUDIENCE,
    sub: request.subject,
    scope: [...request.scopes],
    iat,
    exp: iat + request.ttlSeconds,
    jti: randomBytes(12).toString('base64url'),
  };
  const token = await signer.sign(API_TOKEN_TYPE, { ...claims, scope: claims.scope.join(' ') });
  return { token, claims };
}

/** Whether an operator revoked the token with this id (`POST /token-revocations`). */
export type RevocationCheck = (tokenId: string) => Promise<boolean>;

/**
 * Verifies an API bearer token offline against the trusted KMS public keys and returns who it
 * speaks for; with `isRevoked`, a token an operator revoked is refused too, however valid. Every
 * failure is a TokenError; its message is for logs, never for the caller.
 */
export async function verifyApiToken(token: string, keys: PublicKeySource, now = Date.now(), isRevoked?: RevocationCheck): Promise<Principal> {
  const jws = decodeJws(token);
  if (jws.header.typ !== API_TOKEN_TYPE) throw new TokenError(`typ must be ${API_TOKEN_TYPE}`);
  if (!(await keys.isTrusted(jws.header.kid))) throw new TokenError(`kid ${jws.header.kid} is not a trusted API token key`);
  if (!verifyEs256(jws.signingInput, jws.signature, await keys.get(jws.header.kid))) throw new TokenError('bad signature');
  const parsed = ApiTokenClaims.safeParse(jws.payload);
  if (!parsed.success) throw new TokenError(`bad claims: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`);
  const claims = parsed.data;
  const seconds = now / 1000;
  if (claims.exp <= seconds - LEEWAY_SECONDS) throw new TokenError('token expired');
  if (claims.iat > seconds + LEEWAY_SECONDS) throw new TokenError('token issued in the future');
  if (claims.exp - claims.iat > MAX_API_TOKEN_SECONDS) throw new TokenError('token lifetime is longer than allowed');
  let principal: Principal;
  try {
    principal = principalOf(claims.sub, claims.scope);
  } catch (error) {
    throw new TokenError((error as Error).message);
  }
  if (await isRevoked?.(claims.jti)) throw new TokenError(`token ${claims.jti} was revoked`);
  return principal;
}

/**
 * The id, subject and expiry a token claims, read without checking its signature: enough to
 * revoke it (revoking the id of a forged token changes nothing for real ones but that id).
 */
export function claimedTokenId(token: string): { jti: string; sub?: string; exp?: number } {
  let payload: unknown;
  try {
    payload = decodeJws(token).payload;
  } catch (error) {
    throw new TokenError(`not a token: ${(error as Error).message}`);
  }
  const parsed = ApiTokenClaims.pick({ jti: true }).extend({ sub: z.string().optional(), exp: z.int().optional() }).safeParse(payload);
  if (!parsed.success) throw new TokenError('the token carries no id (jti)');
  return parsed.data;
}
