import { operations } from '#events/operations.ts';
import { convergenceTableName } from '../commons/convergence-table.ts';
import { apiHandler } from '../commons/http.ts';
import { assertActsForHost } from '../domain/access.ts';
import { recordEndpointAcks } from '../domain/convergence.ts';

export const handler = apiHandler(operations.acknowledgeEndpoints, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  await recordEndpointAcks(convergenceTableName, path.hostId, body.acks);
  return { statusCode: 204 };
});
