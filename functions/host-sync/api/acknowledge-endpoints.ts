import { operations } from '#events/operations.ts';
import { convergenceTableName } from '../../platform/convergence-table.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { assertActsForHost } from '../../core/access.ts';
import { recordEndpointAcks } from '../convergence.ts';

export const handler = apiHandler(operations.acknowledgeEndpoints, async ({ path, body, caller }) => {
  assertActsForHost(caller, path.hostId);
  await recordEndpointAcks(convergenceTableName, path.hostId, body.acks);
  return { statusCode: 204 };
});
