import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { assertActsForHost } from '../domain/access.ts';
import { vmConfigsOfHost } from '../domain/vm-config.ts';

export const handler = apiHandler(operations.getHostVmConfigs, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await vmConfigsOfHost(tableName, path.hostId) };
});
