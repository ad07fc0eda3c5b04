import { z } from 'zod';
import { ipv4Cidr } from '#events/identifiers.ts';
import { operations } from '#events/operations.ts';
import { apiHandler } from '../../triggers/api-handler.ts';
import { tableName } from '../../platform/table.ts';
import { currentRegion } from '../../platform/region.ts';
import { assertActsForHost } from '../../core/access.ts';
import { vmConfigsOfHost } from '../vm-config.ts';
import { optionalSetting } from '../../platform/env.ts';

/** The deployment's private ranges opened to VMs' egress (the stack's egressOpenCidrs); checked at cold start. */
const egressOpenCidrs = z.array(ipv4Cidr).parse(
  (optionalSetting('egressOpenCidrs') ?? '')
    .split(',')
    .map((cidr) => cidr.trim())
    .filter(Boolean),
);

export const handler = apiHandler(operations.getHostVmConfigs, async ({ path, caller }) => {
  assertActsForHost(caller, path.hostId);
  return { statusCode: 200, body: await vmConfigsOfHost(tableName, currentRegion, path.hostId, egressOpenCidrs) };
});
