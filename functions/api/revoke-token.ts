import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { revokeToken } from '../domain/token-revocations.ts';

export const handler = apiHandler(operations.revokeToken, async ({ body, caller }) => {
  const { revocation, created } = await revokeToken(tableName, body, `${caller.kind}:${caller.id}`);
  return { statusCode: created ? 201 : 200, body: revocation };
});
