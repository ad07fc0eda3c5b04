import { operations } from '#events/operations.ts';
import { requiredEnv } from '../commons/env.ts';
import { apiHandler } from '../commons/http.ts';
import { currentRegion } from '../commons/region.ts';
import { tableName } from '../commons/table.ts';
import { createVm } from '../domain/vms.ts';
import { tenantOf } from '../domain/access.ts';
import { newPairKeyCiphertext } from '../domain/pair-keys.ts';

const placement = { region: currentRegion, imagesBucket: requiredEnv('IMAGES_BUCKET') };

export const handler = apiHandler(operations.createVm, async ({ body, caller }) => ({
  statusCode: 201,
  body: await createVm(tableName, tenantOf(caller), body, placement, newPairKeyCiphertext),
}));
