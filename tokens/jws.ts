import { verify, type KeyObject } from 'node:crypto';

/** The only algorithm accepted: a token naming another (or `none`) is refused before any key is used. */
export const ALGORITHM = 'ES256';

export interface JwsHeader {
  alg: typeof ALGORITHM;
  typ: string;
  /** Which key signed: the KMS key id, or a key thumbprint for host-held keys. */
  kid: string;
}

export interface DecodedJws {
  header: JwsHeader;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

/** Anything that turns a payload into a signed compact JWS: a KMS key, or a key pair held in memory. */
export interface JwsSigner {
  sign(typ: string, payload: Record<string, unknown>): Promise<string>;
}

/** The public keys a verifier trusts, by `kid`. */
export interface PublicKeySource {
  isTrusted(kid: string): boolean | Promise<boolean>;
  get(kid: string): Promise<KeyObject>;
}

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
}

const encodeJson = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export function signingInputOf(header: JwsHeader, payload: Record<string, unknown>): string {
  return `${encodeJson(header)}.${encodeJson(payload)}`;
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Splits a compact JWS and parses its parts; says nothing yet about whether it is genuine. */
export function decodeJws(token: string): DecodedJws {
  if (token.length > 16_384) throw new TokenError('token is too long');
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) throw new TokenError('token is not a compact JWS');
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = parseJsonPart(headerPart, 'header');
  if (header.alg !== ALGORITHM) throw new TokenError(`alg must be ${ALGORITHM}`);
  if (typeof header.kid !== 'string' || typeof header.typ !== 'string') throw new TokenError('header needs typ and kid');
  return {
    header: header as unknown as JwsHeader,
    payload: parseJsonPart(payloadPart, 'payload'),
    signingInput: `${headerPart}.${payloadPart}`,
    signature: Buffer.from(signaturePart, 'base64url'),
  };
}

function parseJsonPart(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new TokenError(`${what} is not JSON`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new TokenError(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** ES256 signatures in JWS are r||s, 64 bytes (RFC 7518 §3.4), not DER. */
export function verifyEs256(signingInput: string, signature: Buffer, publicKey: KeyObject): boolean {
  if (signature.length !== 64) return false;
  return verify('sha256', Buffer.from(signingInput), { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

/**
 * KMS returns ECDSA signatures DER-encoded (SEQUENCE of two INTEGERs); JWS wants each integer
 * as 32 big-endian bytes.
 */
export function derToJose(der: Uint8Array): Buffer {
  const bytes = Buffer.from(der);
  let offset = 0;
  const expect = (tag: number) => {
    if (bytes[offset++] !== tag) throw new Error('signature is not a DER ECDSA signature');
  };
  const readLength = () => {
    let length = bytes[offset++]!;
    if (length & 0x80) {
      const count = length & 0x7f;
      length = 0;
      for (let i = 0; i < count; i++) length = (length << 8) | bytes[offset++]!;
    }
    return length;
  };
  const readInteger = () => {
    expect(0x02);
    const length = readLength();
    let value = bytes.subarray(offset, offset + length);
    offset += length;
    while (value.length > 32 && value[0] === 0) value = value.subarray(1);
    if (value.length > 32) throw new Error('signature integer is longer than 32 bytes');
    return Buffer.concat([Buffer.alloc(32 - value.length), value]);
  };
  expect(0x30);
  readLength();
  return Buffer.concat([readInteger(), readInteger()]);
}
