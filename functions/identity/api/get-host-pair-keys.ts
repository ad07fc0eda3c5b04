import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { assertActsForHost } from '../../core/access.ts';
import { pairKeysOfHost } from '../host-pair-keys.ts';

export const handler = apiHandler(operations.getHostPairKeys, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await pairKeysOfHost(tableName, path.hostId) };
});
