import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { tableName } from '../commons/table.ts';
import { requestConnection } from '../domain/connections.ts';
import { decryptPairKey } from '../domain/pair-keys.ts';

export const handler = apiHandler(operations.requestConnection, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await requestConnection(tableName, caller, path.vmId, body.destinationVmId, decryptPairKey),
}));
