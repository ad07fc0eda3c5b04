import { ValidationError } from './errors.ts';

/** Opaque list cursors: the DynamoDB LastEvaluatedKey, base64url-encoded. */
export function encodeNextToken(lastKey: Record<string, unknown> | undefined): string | undefined {
  return lastKey ? Buffer.from(JSON.stringify(lastKey)).toString('base64url') : undefined;
}

export function decodeNextToken(token: string | undefined): Record<string, unknown> | undefined {
  if (token === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // fall through to the error below
  }
  throw new ValidationError('nextToken: is not a token this API returned');
}
