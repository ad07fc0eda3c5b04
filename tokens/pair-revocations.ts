import type { PairRevocation, PairRevocations } from '#events/tokens.ts';
import { PAIR_TOKEN_SECONDS } from './pair-tokens.ts';

export type { PairRevocation, PairRevocations };

/*
 * Per-pair revocation (source VM -> destination VM), kept on the destination VM: while a pair is
 * revoked the control plane mints no token for it and the destination host refuses every token of
 * it, even one minted before and still unexpired. Lifting a revocation lets new tokens be minted;
 * tokens issued before the revocation stay refused until they expire (a lifted revocation is kept
 * one token lifetime for that, then forgotten).
 */

/** Revocations a destination VM may hold in force at once: its item stays small. */
export const MAX_PAIR_REVOCATIONS = 500;

export const isRevoked = (revocation: PairRevocation | undefined): boolean => revocation !== undefined && revocation.liftedAt === undefined;

/**
 * Why a verified token of `src` is refused under the destination's revocations, or undefined.
 * `iat` is in whole seconds: a token minted in the second of a revocation is refused whether it was
 * minted before or after it (and one minted in that second after a lift in that second, too).
 */
export function pairRevocationRefusal(revocations: PairRevocations | undefined, claims: { src: string; dst: string; iat: number }): string | undefined {
  const revocation = revocations?.[claims.src];
  if (!revocation) return undefined;
  if (isRevoked(revocation)) return `pair ${claims.src} -> ${claims.dst} is revoked`;
  if (claims.iat * 1000 <= revocation.revokedAt) return `token was issued before pair ${claims.src} -> ${claims.dst} was revoked`;
  return undefined;
}

/** Lifted revocations whose tokens have all expired are of no use any more. */
function pruned(revocations: PairRevocations, now: number): PairRevocations {
  return Object.fromEntries(
    Object.entries(revocations).filter(([, revocation]) => revocation.liftedAt === undefined || revocation.liftedAt + PAIR_TOKEN_SECONDS * 1000 > now),
  );
}

/** The revocations after revoking `src`; revoking a revoked pair keeps its first time. Undefined when there are too many. */
export function withRevoked(revocations: PairRevocations | undefined, src: string, now: number): PairRevocations | undefined {
  const current = pruned(revocations ?? {}, now);
  if (isRevoked(current[src])) return current;
  const next = { ...current, [src]: { revokedAt: now } };
  if (Object.values(next).filter(isRevoked).length > MAX_PAIR_REVOCATIONS) return undefined;
  return next;
}

/** The revocations after lifting `src`'s; undefined when it is not revoked. */
export function withLifted(revocations: PairRevocations | undefined, src: string, now: number): PairRevocations | undefined {
  const current = pruned(revocations ?? {}, now);
  const revocation = current[src];
  if (!revocation || !isRevoked(revocation)) return undefined;
  return { ...current, [src]: { revokedAt: revocation.revokedAt, liftedAt: now } };
}
