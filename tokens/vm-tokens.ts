import { createPublicKey, randomBytes, type KeyObject } from 'node:crypto';
import { VM_TOKEN_TYPE, VmTokenClaims, type HostCredentialClaims } from '#events/tokens.ts';
import { verifyHostCredential } from './host-credentials.ts';
import { decodeJws, TokenError, verifyEs256, type PublicKeySource } from './jws.ts';
import { thumbprintOf, type KeyPairJwsSigner } from './key-pair-signer.ts';

/** Minutes: what a VM holds is worth little once it leaks. */
export const VM_TOKEN_SECONDS = 10 * 60;

export interface MintVmToken {
  credential: string;
  claims: HostCredentialClaims;
  vmId: string;
  audience: string;
  now?: number;
}

/**
 * Mints a VM's short-term token on the host, with no call to the control plane: signed by the
 * host's minting key and carrying the credential that vouches for that key. Never outlives the credential.
 */
export function mintVmToken(signer: KeyPairJwsSigner, request: MintVmToken): { token: string; expiresAt: number } {
  const iat = Math.floor((request.now ?? Date.now()) / 1000);
  const exp = Math.min(iat + VM_TOKEN_SECONDS, request.claims.exp);
  const claims: VmTokenClaims = {
    iss: `host:${request.claims.host}`,
    sub: request.claims.sa,
    aud: request.audience,
    vm: request.vmId,
    tenant: request.claims.tenant,
    iat,
    exp,
    jti: randomBytes(12).toString('base64url'),
    cred: request.credential,
  };
  return { token: signer.signNow(VM_TOKEN_TYPE, claims), expiresAt: exp * 1000 };
}

export interface VerifiedVmToken {
  serviceAccountId: string;
  tenantId: string;
  vmId: string;
  /** The minting host's opaque token name (not its id). */
  hostRef: string;
  audience: string;
  expiresAt: number;
}

/**
 * Verifies a VM token offline, the whole chain: the host credential's KMS signature and expiry,
 * the token's signature by the key the credential binds (`cnf`), the token's expiry within the
 * credential's, its audience, and that the credential names the token's VM and service account.
 * Credentials already verified are remembered, so a busy verifier checks each one once.
 */
export class VmTokenVerifier {
  private readonly credentials = new Map<string, { claims: HostCredentialClaims; key: KeyObject }>();

  constructor(
    private readonly credentialKeys: PublicKeySource,
    private readonly maxCachedCredentials = 10_000,
  ) {}

  async verify(token: string, audience: string, now = Date.now()): Promise<VerifiedVmToken> {
    const jws = decodeJws(token);
    if (jws.header.typ !== VM_TOKEN_TYPE) throw new TokenError(`typ must be ${VM_TOKEN_TYPE}`);
    const parsed = VmTokenClaims.safeParse(jws.payload);
    if (!parsed.success) throw new TokenError(`claims are malformed: ${parsed.error.issues[0]?.path.join('.')}`);
    const claims = parsed.data;
    const { claims: credential, key } = await this.credential(claims.cred, now);

    if (jws.header.kid !== thumbprintOf(key)) throw new TokenError('token was not signed by the key its credential binds');
    if (!verifyEs256(jws.signingInput, jws.signature, key)) throw new TokenError('bad signature');
    const seconds = now / 1000;
    if (claims.exp <= seconds) throw new TokenError('token expired');
    if (claims.exp > credential.exp || claims.iat < credential.iat) throw new TokenError('token outlives its credential');
    if (claims.aud !== audience) throw new TokenError(`token is for audience ${claims.aud}`);
    if (claims.iss !== `host:${credential.host}`) throw new TokenError('token issuer is not the credential host');
    if (claims.sub !== credential.sa || claims.tenant !== credential.tenant) throw new TokenError('token names another service account than its credential');
    if (!credential.vms.includes(claims.vm)) throw new TokenError(`credential does not cover vm ${claims.vm}`);
    return {
      serviceAccountId: claims.sub,
      tenantId: claims.tenant,
      vmId: claims.vm,
      hostRef: credential.host,
      audience: claims.aud,
      expiresAt: claims.exp * 1000,
    };
  }

  private async credential(credential: string, now: number) {
    const known = this.credentials.get(credential);
    if (known) {
      if (known.claims.exp <= now / 1000) throw new TokenError('credential expired');
      return known;
    }
    const claims = await verifyHostCredential(credential, this.credentialKeys, now);
    const entry = { claims, key: createPublicKey({ key: claims.cnf.jwk, format: 'jwk' }) };
    if (this.credentials.size >= this.maxCachedCredentials) this.credentials.delete(this.credentials.keys().next().value!);
    this.credentials.set(credential, entry);
    return entry;
  }
}
