import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { logger } from '../../platform/logger.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { recoverDownHosts } from '../host-recovery.ts';

/** Every minute (an EventBridge schedule): restarts elsewhere the VMs of hosts that are down and asked for it. */
export const handler = middy(async () => {
  const summary = await recoverDownHosts({
    table: tableName,
    livenessTable: livenessTableName,
    region: currentRegion,
    newPairKeyCiphertext,
    log: (message, fields) => logger.warn(message, fields ?? {}),
  });
  if (summary.downHosts.length > 0) logger.info('swept down hosts', { ...summary });
  return summary;
}).use(injectLambdaContext(logger));
