import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { requestConnection } from '../connections.ts';
import { decryptPairKey } from '../../platform/pair-keys.ts';

export const handler = apiHandler(operations.requestConnection, async ({ path, body, caller }) => ({
  statusCode: 200,
  body: await requestConnection(tableName, caller, path.vmId, body.destinationVmId, decryptPairKey),
}));
