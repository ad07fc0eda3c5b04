import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { ConflictError } from '../core/errors.ts';
import { getVmFor } from '../compute/vms.ts';
import { vmConvergence } from './convergence.ts';

type ConvergenceAnswer = z.infer<typeof responses.MigrationConvergence>;

/** For the source of a VM's migration: how far its new endpoint has spread (see vmConvergence). */
export async function migrationConvergence(table: string, convergenceTable: string, hostId: string, vmId: string): Promise<ConvergenceAnswer> {
  const vm = await getVmFor(table, undefined, vmId);
  const migration = vm.migration;
  if (!migration || migration.sourceHostId !== hostId) throw new ConflictError(`host ${hostId} is not the source of a migration of vm ${vmId}`);
  const convergence = await vmConvergence(table, convergenceTable, undefined, vmId);
  return {
    migrationId: migration.migrationId,
    phase: migration.phase,
    hostsTotal: convergence.hostsTotal,
    hostsConverged: convergence.hostsConverged,
    converged: convergence.converged && vm.hostId === migration.targetHostId,
  };
}
