import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ipv4Address, resourceId } from '#events/identifiers.ts';
import { TokenError } from './jws.ts';

/** Minutes: enough to set up a flow; a flow outlives its token. */
export const PAIR_TOKEN_SECONDS = 5 * 60;
const DOMAIN = 'stratoplane-pair-v1';

export const PairTokenClaims = z.strictObject({
  src: resourceId,
  srcIp: ipv4Address,
  dst: resourceId,
  dstIp: ipv4Address,
  /** The destination's host address: a token is good only at the host it was issued for. */
  dstHost: ipv4Address,
  /** The source's host address: the destination admits the pair only when that host presents it, and routes its answers there. */
  srcHost: ipv4Address.optional(),
  /** The source's network: while the destination's network no longer allows it, the pair opens no new connection. */
  srcNet: resourceId.optional(),
  iat: z.int(),
  exp: z.int(),
  /** Unique per token: the destination host admits one flow per token and refuses it again. */
  jti: z.string().min(16).max(32),
});
export type PairTokenClaims = z.infer<typeof PairTokenClaims>;

const mac = (secret: Buffer, payload: string) => createHmac('sha256', secret).update(`${DOMAIN}.${payload}`).digest();

/** `payload.mac`, the MAC keyed by the destination VM's secret: only its host and the control plane can make one. */
export function issuePairToken(
  destinationSecret: Buffer,
  claims: Omit<PairTokenClaims, 'iat' | 'exp' | 'jti'>,
  now = Date.now(),
): { token: string; claims: PairTokenClaims } {
  const iat = Math.floor(now / 1000);
  const full: PairTokenClaims = { ...claims, iat, exp: iat + PAIR_TOKEN_SECONDS, jti: randomBytes(12).toString('base64url') };
  const payload = Buffer.from(JSON.stringify(full)).toString('base64url');
  return { token: `${payload}.${mac(destinationSecret, payload).toString('base64url')}`, claims: full };
}

/**
 * Checks a pair token at the destination host: MAC under the destination VM's secret, not
 * expired, and issued for this destination VM at this host's address.
 */
export function verifyPairToken(token: string, destinationSecret: Buffer, expected: { dst: string; dstHost: string }, now = Date.now()): PairTokenClaims {
  const [payload, signature, extra] = token.split('.');
  if (!payload || !signature || extra !== undefined || token.length > 2048) throw new TokenError('not a pair token');
  const expectedMac = mac(destinationSecret, payload);
  const givenMac = Buffer.from(signature, 'base64url');
  if (givenMac.length !== expectedMac.length || !timingSafeEqual(givenMac, expectedMac)) throw new TokenError('bad MAC');
  let parsed: ReturnType<typeof PairTokenClaims.safeParse>;
  try {
    parsed = PairTokenClaims.safeParse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
  } catch {
    throw new TokenError('payload is not JSON');
  }
  if (!parsed.success) throw new TokenError('malformed claims');
  const claims = parsed.data;
  if (claims.exp <= now / 1000) throw new TokenError('token expired');
  if (claims.dst !== expected.dst) throw new TokenError(`token was issued for vm ${claims.dst}`);
  if (claims.dstHost !== expected.dstHost) throw new TokenError(`token was issued for host address ${claims.dstHost}`);
  return claims;
}
