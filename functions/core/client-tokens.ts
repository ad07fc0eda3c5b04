import { createHash } from 'node:crypto';
import { ConflictError } from './errors.ts';
import { getItem, type TransactItem } from './store.ts';
import { keys } from './table-keys.ts';

/** How long a token is remembered: retries come within minutes; a day leaves room for a stuck client. */
const TOKEN_SECONDS = 24 * 3600;

interface ClientTokenItem {
  resourceId: string;
  fingerprint: string;
  expiresAt: number;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** One create request of one tenant, which may carry an idempotency token. */
export interface TokenScope {
  table: string;
  tenantId: string;
  /** The operation, so the same token on two kinds of create means two things. */
  operation: string;
  request: { clientToken?: string };
}

/** A create found its token claimed, in its own transaction, by a request with the same token. */
class ClientTokenTakenError extends Error {}

/**
 * Runs a create at most once per idempotency token. Without a token, `create` just runs. With
 * one, a request seen before answers with what it created (`existing`), and a new one runs
 * `create`, which must put `claim(id)` into the transaction that creates resource `id`, so the
 * token and the resource are written together or not at all, and call `throwIfClaimLost` when
 * that transaction is cancelled. A token reused for a different request is a 409.
 */
export async function createOnce<V>(
  scope: TokenScope,
  existing: (resourceId: string) => Promise<V>,
  create: (claim: (resourceId: string) => TransactItem[]) => Promise<V>,
): Promise<V> {
  if (!scope.request.clientToken) return create(() => []);
  const earlier = await earlierCreation(scope);
  if (earlier) return replay(scope, earlier, existing);
  try {
    return await create((resourceId) => [claimItem(scope, resourceId)]);
  } catch (error) {
    if (!(error instanceof ClientTokenTakenError)) throw error;
    // A request with the same token won the race: answer with what it made.
    const winner = await earlierCreation(scope);
    if (!winner) throw error;
    return replay(scope, winner, existing);
  }
}

/** For a create's cancelled transaction: the token claim is its last item, and if that failed, another request holds the token. */
export function throwIfClaimLost(codes: readonly string[], claimItems: readonly TransactItem[]): void {
  if (claimItems.length > 0 && codes[codes.length - 1] === 'ConditionalCheckFailed') throw new ClientTokenTakenError();
}

async function earlierCreation(scope: TokenScope): Promise<string | undefined> {
  const item = await getItem<ClientTokenItem>(scope.table, keys.clientToken(scope.tenantId, scope.operation, scope.request.clientToken!));
  // DynamoDB removes expired items only within a day or two: until then they are ignored here.
  if (!item || item.expiresAt <= nowSeconds()) return undefined;
  if (item.fingerprint !== fingerprintOf(scope.request)) {
    throw new ConflictError(
      `clientToken: ${scope.request.clientToken} was already used for a different request (it made ${item.resourceId}); use a new token for a new request`,
    );
  }
  return item.resourceId;
}

async function replay<V>(scope: TokenScope, resourceId: string, existing: (resourceId: string) => Promise<V>): Promise<V> {
  try {
    return await existing(resourceId);
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) {
      throw new ConflictError(
        `clientToken: ${scope.request.clientToken} already made ${resourceId}, which has since been deleted; use a new token for a new request`,
      );
    }
    throw error;
  }
}

function claimItem(scope: TokenScope, resourceId: string): TransactItem {
  return {
    Put: {
      TableName: scope.table,
      Item: {
        ...keys.clientToken(scope.tenantId, scope.operation, scope.request.clientToken!),
        kind: 'client-token',
        resourceId,
        fingerprint: fingerprintOf(scope.request),
        expiresAt: nowSeconds() + TOKEN_SECONDS,
      },
      ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now',
      ExpressionAttributeValues: { ':now': nowSeconds() },
    },
  };
}

/** The request as validated, keys sorted: the same parameters give the same fingerprint. */
export function fingerprintOf(request: object): string {
  const canonical = (value: unknown): unknown =>
    value && typeof value === 'object' && !Array.isArray(value)
      ? Object.fromEntries(
          Object.keys(value)
            .sort()
            .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
        )
      : value;
  return createHash('sha256')
    .update(JSON.stringify(canonical(request)))
    .digest('base64url');
}
