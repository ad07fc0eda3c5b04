import { createHmac, timingSafeEqual } from 'node:crypto';
import { GenerateMacCommand } from '@aws-sdk/client-kms';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { dynamodb, kms } from '../platform/clients.ts';
import { ValidationError } from './errors.ts';
import { setting } from '../platform/env.ts';

/**
 * List cursors (`nextToken`): the DynamoDB LastEvaluatedKey, with an HMAC-SHA256 over it and over
 * the list it came from (table, index and partition, which names the tenant, or the tenant's
 * network for its VMs). A client can only hand back a cursor the API gave it, for the same list:
 * a forged, altered or another tenant's cursor is a 400, and never reaches DynamoDB.
 *
 * Format: `c1.<base64url JSON of the key>.<base64url MAC>`.
 */
const VERSION = 'c1';
const INVALID = 'nextToken: is not a token this API returned for this list (pass back the nextToken of the previous page unchanged)';

/** Which list a cursor belongs to; part of what is signed, never of the cursor itself. */
export interface CursorScope {
  table: string;
  index: string;
  partition: string;
}

const signedInput = (scope: CursorScope, payload: string) => [VERSION, scope.table, scope.index, scope.partition, payload].join('\n');

export async function encodeNextToken(lastKey: Record<string, unknown> | undefined, scope: CursorScope, macKey = cursorMacKey): Promise<string | undefined> {
  if (!lastKey) return undefined;
  const payload = Buffer.from(JSON.stringify(lastKey)).toString('base64url');
  const mac = createHmac('sha256', await macKey())
    .update(signedInput(scope, payload))
    .digest('base64url');
  return `${VERSION}.${payload}.${mac}`;
}

export async function decodeNextToken(token: string | undefined, scope: CursorScope, macKey = cursorMacKey): Promise<Record<string, unknown> | undefined> {
  if (token === undefined) return undefined;
  const [version, payload, mac, ...rest] = token.split('.');
  if (version !== VERSION || !payload || !mac || rest.length > 0) throw new ValidationError(INVALID);
  const expected = createHmac('sha256', await macKey())
    .update(signedInput(scope, payload))
    .digest();
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new ValidationError(INVALID);
  // Signed by this API, so well formed; checked all the same.
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw new ValidationError(INVALID);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ValidationError(INVALID);
  return value as Record<string, unknown>;
}

/**
 * The key cursors are signed with, locally: the KMS HMAC key's MAC of a fixed label. HMAC is
 * deterministic, so every function container of the region derives the same key with one
 * GenerateMac at its first list (not one KMS call per page), and only a role allowed
 * kms:GenerateMac on that key can derive it. Changing the label retires every cursor issued.
 */
const KEY_LABEL = 'stratoplane list cursors v1';
let derivedKey: Promise<Buffer> | undefined;

export function cursorMacKey(): Promise<Buffer> {
  derivedKey ??= (async () => {
    const keyId = setting('listCursorKeyArn');
    const { Mac } = await kms.send(new GenerateMacCommand({ KeyId: keyId, MacAlgorithm: 'HMAC_SHA_256', Message: Buffer.from(KEY_LABEL) }));
    return Buffer.from(Mac!);
  })();
  // A failed derivation (KMS did not answer) is tried again by the next request.
  derivedKey.catch(() => (derivedKey = undefined));
  return derivedKey;
}

/** One page of an index partition, for list routes. */
export async function queryPage<T>(
  table: string,
  index: { name: string; partitionKey: string; value: string },
  limit: number,
  nextToken: string | undefined,
): Promise<{ items: T[]; nextToken?: string }> {
  const scope: CursorScope = { table, index: index.name, partition: index.value };
  const page = await dynamodb.send(
    new QueryCommand({
      TableName: table,
      IndexName: index.name,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': index.partitionKey },
      ExpressionAttributeValues: { ':pk': index.value },
      Limit: limit,
      ExclusiveStartKey: await decodeNextToken(nextToken, scope),
    }),
  );
  return { items: (page.Items ?? []) as T[], nextToken: await encodeNextToken(page.LastEvaluatedKey, scope) };
}
