import type { z } from 'zod';
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { RevokeTokenRequest } from '#events/api.ts';
import type * as responses from '#events/responses.ts';
import { claimedTokenId, MAX_API_TOKEN_SECONDS } from '#tokens/api-tokens.ts';
import { TokenError } from '#tokens/jws.ts';
import { dynamodb } from '../platform/clients.ts';
import { ValidationError } from '../core/errors.ts';
import { getItem } from '../core/store.ts';
import { keys } from '../core/table-keys.ts';

export type TokenRevocationView = z.infer<typeof responses.TokenRevocation>;

/** Kept a minute past the token's expiry: verifiers tolerate that much clock skew. */
const SKEW_SECONDS = 60;

interface RevokedTokenItem extends TokenRevocationView {
  expiresAt: number;
}

/**
 * Revokes an API token by its id, until it would have expired (from the token; the longest any
 * token lives when only the id is given). The table is global: every region's authorizer refuses it.
 */
export async function revokeToken(
  table: string,
  request: RevokeTokenRequest,
  revokedBy: string,
  now = Date.now(),
): Promise<{ revocation: TokenRevocationView; created: boolean }> {
  let claimed: { jti: string; sub?: string; exp?: number };
  try {
    claimed = request.token ? claimedTokenId(request.token) : { jti: request.jti! };
  } catch (error) {
    if (error instanceof TokenError) throw new ValidationError(`body.token: ${error.message}`);
    throw error;
  }
  const expiresAt = (claimed.exp ?? Math.floor(now / 1000) + MAX_API_TOKEN_SECONDS) + SKEW_SECONDS;
  const item: RevokedTokenItem & Record<string, unknown> = {
    ...keys.revokedToken(claimed.jti),
    kind: 'revoked-token',
    jti: claimed.jti,
    ...(claimed.sub ? { subject: claimed.sub } : {}),
    ...(request.reason ? { reason: request.reason } : {}),
    revokedAt: new Date(now).toISOString(),
    revokedUntil: new Date(expiresAt * 1000).toISOString(),
    revokedBy,
    expiresAt,
  };
  try {
    await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
    return { revocation: toView(item), created: true };
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
    return { revocation: toView((await getItem<RevokedTokenItem>(table, keys.revokedToken(claimed.jti)))!), created: false };
  }
}

/** Whether a token id is revoked (and not yet past its token's expiry). */
export async function isTokenRevoked(table: string, jti: string, now = Date.now()): Promise<boolean> {
  const item = await getItem<RevokedTokenItem>(table, keys.revokedToken(jti));
  return item !== undefined && item.expiresAt > now / 1000;
}

const toView = ({ jti, subject, reason, revokedAt, revokedUntil }: RevokedTokenItem): TokenRevocationView => ({
  jti,
  ...(subject ? { subject } : {}),
  ...(reason ? { reason } : {}),
  revokedAt,
  revokedUntil,
});
