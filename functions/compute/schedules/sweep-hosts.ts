import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import { logger } from '../../platform/logger.ts';
import { livenessTableName } from '../../platform/liveness-table.ts';
import { newPairKeyCiphertext } from '../../platform/pair-keys.ts';
import { currentRegion } from '../../platform/region.ts';
import { tableName } from '../../platform/table.ts';
import { announceMoveAtOnce } from '../../host-sync/move-announcements.ts';
import { driveDrain, drainingHosts } from '../host-drains.ts';
import { readFleet, recoverDownHosts } from '../host-recovery.ts';
import { applyPlacementIndexChanges, placementIndexChanges } from '../placement-upkeep.ts';

const deps = {
  table: tableName,
  livenessTable: livenessTableName,
  region: currentRegion,
  newPairKeyCiphertext,
  announce: (vm: Parameters<typeof announceMoveAtOnce>[2]) => announceMoveAtOnce(tableName, currentRegion, vm),
};

/**
 * Every minute (an EventBridge schedule), the VMs that must leave their hosts: those of down hosts
 * that asked to be restarted elsewhere, and those still on hosts an operator drains. And the
 * placement index's upkeep: hosts long dead leave it, hosts back (or never in it) go in.
 */
export const handler = middy(async () => {
  const fleet = await readFleet(tableName, livenessTableName, currentRegion);
  const recovery = await recoverDownHosts({ ...deps, log: (message, fields) => logger.warn(message, fields ?? {}) }, fleet);
  if (recovery.downHosts.length > 0) logger.info('swept down hosts', { ...recovery });
  const indexChanges = placementIndexChanges(fleet.hosts, fleet.liveness, currentRegion, Date.now());
  const reindexed = await applyPlacementIndexChanges(tableName, indexChanges);
  if (reindexed > 0) logger.info('placement index: dead hosts out, live ones in', { changes: indexChanges, applied: reindexed });
  const drains = await drainingHosts(tableName, currentRegion);
  for (const host of drains) {
    const after = await driveDrain(deps, host);
    logger.info('drained again', { hostId: host.hostId, vmsLeft: after.vmCount, stuck: after.drainStuck ?? [] });
  }
  return { recovery, drained: drains.map((host) => host.hostId), reindexed };
}).use(injectLambdaContext(logger));
