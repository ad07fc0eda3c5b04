import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { logger } from '../../platform/logger.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { announceMoveAtOnce } from '../../host-sync/move-announcements.ts';
import { driveDrain, drainingHosts } from '../host-drains.ts';
import { recoverDownHosts } from '../host-recovery.ts';

const deps = {
  table: tableName,
  livenessTable: livenessTableName,
  region: currentRegion,
  newPairKeyCiphertext,
  announce: (vm: Parameters<typeof announceMoveAtOnce>[2]) => announceMoveAtOnce(tableName, currentRegion, vm),
};

/**
 * Every minute (an EventBridge schedule), the VMs that must leave their hosts: those of down hosts
 * that asked to be restarted elsewhere, and those still on hosts an operator drains.
 */
export const handler = middy(async () => {
  const recovery = await recoverDownHosts({ ...deps, log: (message, fields) => logger.warn(message, fields ?? {}) });
  if (recovery.downHosts.length > 0) logger.info('swept down hosts', { ...recovery });
  const drains = await drainingHosts(tableName, currentRegion);
  for (const host of drains) {
    const after = await driveDrain(deps, host.hostId);
    logger.info('drained again', { hostId: host.hostId, vmsLeft: after.vmCount, stuck: after.drainStuck ?? [] });
  }
  return { recovery, drained: drains.map((host) => host.hostId) };
}).use(injectLambdaContext(logger));
