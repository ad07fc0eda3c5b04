import type { MigrationOutcome, MigrationPhase, MigrationRecord, ReportMigrationRequest } from '#events/migrations.ts';

/** What a host's report does to a live migration. */
export type MigrationStep =
  /** The destination listens: the source may send. */
  | { kind: 'transfer'; port: number }
  /** The guest runs at the destination: its endpoint becomes the destination's. */
  | { kind: 'cut-over' }
  /** Every host that needs the new endpoint holds it: the source lets go. */
  | { kind: 'clean-up'; downtimeMs?: number; totalMs?: number }
  /** The source let go: the migration is over. */
  | { kind: 'complete' }
  /** Failed before the cut-over: the guest stays where it was. */
  | { kind: 'abort'; reason: string }
  /** Already done (a retried report): nothing to write. */
  | { kind: 'none' };

/** Why a report cannot apply: said to the reporting host with a 409. */
export class MigrationReportRefused extends Error {}

const ORDER: readonly MigrationPhase[] = ['preparing', 'transferring', 'cut-over', 'cleaning-up'];
const atOrAfter = (phase: MigrationPhase, than: MigrationPhase) => ORDER.indexOf(phase) >= ORDER.indexOf(than);

/**
 * The step a host's report leads to, from the migration the VM holds (undefined: none runs) and
 * how its last one ended. Only the destination says `listening` and `resumed`, only the source
 * `converged` and `cleaned`; a report that arrives again (a retry after a lost answer) is `none`;
 * one for another migration, from another host or out of order is refused. `failed` aborts only
 * before the cut-over: after it the guest runs at the destination, and going back is no longer
 * possible.
 */
export function migrationStep(
  migration: MigrationRecord | undefined,
  last: MigrationOutcome | undefined,
  hostId: string,
  report: ReportMigrationRequest,
): MigrationStep {
  if (!migration || migration.migrationId !== report.migrationId) {
    if (last?.migrationId === report.migrationId) {
      // It ended: a late report of its own end, or of the failure that ended it, changes nothing.
      if (last.outcome === 'completed' && report.event !== 'failed') return { kind: 'none' };
      if (last.outcome === 'aborted' && report.event === 'failed') return { kind: 'none' };
      throw new MigrationReportRefused(`migration ${report.migrationId} already ${last.outcome}${last.reason ? ` (${last.reason})` : ''}`);
    }
    throw new MigrationReportRefused(`migration ${report.migrationId} is not under way for this VM`);
  }
  const role = hostId === migration.targetHostId ? 'target' : hostId === migration.sourceHostId ? 'source' : undefined;
  if (!role) throw new MigrationReportRefused(`host ${hostId} is at neither end of migration ${migration.migrationId}`);
  const expect = (who: 'source' | 'target') => {
    if (role !== who) throw new MigrationReportRefused(`only the ${who} host reports ${report.event}`);
  };
  const { phase } = migration;
  switch (report.event) {
    case 'listening':
      expect('target');
      if (phase === 'preparing') return { kind: 'transfer', port: report.port };
      if (phase === 'transferring' && migration.port === report.port) return { kind: 'none' };
      throw new MigrationReportRefused(
        `migration ${migration.migrationId} is ${phase}: too late to listen${phase === 'transferring' ? ' on another port' : ''}`,
      );
    case 'resumed':
      expect('target');
      if (atOrAfter(phase, 'cut-over')) return { kind: 'none' };
      return { kind: 'cut-over' };
    case 'converged':
      expect('source');
      if (phase === 'cleaning-up') return { kind: 'none' };
      if (phase !== 'cut-over') throw new MigrationReportRefused(`migration ${migration.migrationId} is ${phase}: not cut over yet`);
      return {
        kind: 'clean-up',
        ...(report.downtimeMs !== undefined ? { downtimeMs: report.downtimeMs } : {}),
        ...(report.totalMs !== undefined ? { totalMs: report.totalMs } : {}),
      };
    case 'cleaned':
      expect('source');
      if (!atOrAfter(phase, 'cut-over')) throw new MigrationReportRefused(`migration ${migration.migrationId} is ${phase}: not cut over yet`);
      return { kind: 'complete' };
    case 'failed':
      if (atOrAfter(phase, 'cut-over'))
        throw new MigrationReportRefused(`migration ${migration.migrationId} is ${phase}: the guest runs at the destination, too late to abort`);
      return { kind: 'abort', reason: `${role === 'source' ? 'source' : 'destination'} host ${hostId}: ${report.reason}` };
  }
}
