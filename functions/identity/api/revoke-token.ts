import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { revokeToken } from '../token-revocations.ts';

export const handler = apiHandler(operations.revokeToken, async ({ body, caller }) => {
  const { revocation, created } = await revokeToken(tableName, body, `${caller.kind}:${caller.id}`);
  return { statusCode: created ? 201 : 200, body: revocation };
});
