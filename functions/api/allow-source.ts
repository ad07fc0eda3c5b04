import { operations } from '#events/operations.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { tenantOf } from '../domain/access.ts';
import { allowSource } from '../domain/allowed-sources.ts';

export const handler = apiHandler(operations.allowSource, async ({ path, caller }) => ({ statusCode: 200, body: await allowSource(tableName, currentRegion, tenantOf(caller), path.networkId, path.sourceNetworkId) }));
