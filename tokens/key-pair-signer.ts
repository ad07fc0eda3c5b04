import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { ALGORITHM, signingInputOf, type JwsSigner } from './jws.ts';

/** RFC 7638 thumbprint of a P-256 public key: a `kid` that names the key itself. */
export function thumbprintOf(publicKey: KeyObject): string {
  const { crv, kty, x, y } = publicKey.export({ format: 'jwk' });
  return createHash('sha256').update(JSON.stringify({ crv, kty, x, y })).digest('base64url');
}

/** Signs ES256 JWS with a P-256 key pair held in this process (no KMS call per token). */
export class KeyPairJwsSigner implements JwsSigner {
  readonly kid: string;

  constructor(
    private readonly privateKey: KeyObject,
    readonly publicKey: KeyObject,
  ) {
    this.kid = thumbprintOf(publicKey);
  }

  static generate(): KeyPairJwsSigner {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return new KeyPairJwsSigner(privateKey, publicKey);
  }

  async sign(typ: string, payload: Record<string, unknown>): Promise<string> {
    return this.signNow(typ, payload);
  }

  /** Synchronous: signing in memory needs no await, which matters at thousands of tokens a second. */
  signNow(typ: string, payload: Record<string, unknown>): string {
    const signingInput = signingInputOf({ alg: ALGORITHM, typ, kid: this.kid }, payload);
    const signature = sign('sha256', Buffer.from(signingInput), { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${signature.toString('base64url')}`;
  }
}
