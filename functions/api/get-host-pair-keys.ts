import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { assertActsForHost } from '../domain/access.ts';
import { pairKeysOfHost } from '../domain/host-pair-keys.ts';

export const handler = apiHandler(operations.getHostPairKeys, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await pairKeysOfHost(tableName, path.hostId) };
});
