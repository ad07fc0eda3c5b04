import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { dynamodb } from '../commons/clients.ts';
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

/** One page of an index partition, for list routes. */
export async function queryPage<T>(
  table: string,
  index: { name: string; partitionKey: string; value: string },
  limit: number,
  nextToken: string | undefined,
): Promise<{ items: T[]; nextToken?: string }> {
  const page = await dynamodb.send(
    new QueryCommand({
      TableName: table,
      IndexName: index.name,
      KeyConditionExpression: '#pk = :pk',
      ExpressionAttributeNames: { '#pk': index.partitionKey },
      ExpressionAttributeValues: { ':pk': index.value },
      Limit: limit,
      ExclusiveStartKey: decodeNextToken(nextToken),
    }),
  );
  return { items: (page.Items ?? []) as T[], nextToken: encodeNextToken(page.LastEvaluatedKey) };
}
