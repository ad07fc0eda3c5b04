import { describe, expect, it } from 'vitest';
import type { MigrationOutcome, MigrationPhase, MigrationRecord } from '#events/migrations.ts';
import { MigrationReportRefused, migrationStep } from '../../functions/compute/migration-rules.ts';

const migrationId = 'mig-0000000000a1';
const migration = (phase: MigrationPhase, port?: number): MigrationRecord => ({
  migrationId,
  phase,
  sourceHostId: 'host-src',
  sourceAddress: '10.1.0.1',
  targetHostId: 'host-dst',
  targetAddress: '10.1.0.2',
  ...(port ? { port } : {}),
  startedAt: '2026-12-03T00:00:00.000Z',
  updatedAt: '2026-12-03T00:00:00.000Z',
});
const ended = (outcome: MigrationOutcome['outcome']): MigrationOutcome => ({
  migrationId,
  outcome,
  ...(outcome === 'aborted' ? { reason: 'destination host host-dst: QEMU exited' } : {}),
  sourceHostId: 'host-src',
  targetHostId: 'host-dst',
  startedAt: '2026-12-03T00:00:00.000Z',
  endedAt: '2026-12-03T00:00:01.000Z',
});

describe('migration steps', () => {
  it('advances a migration through its phases, each report from the end that sees it', () => {
    expect(migrationStep(migration('preparing'), undefined, 'host-dst', { migrationId, event: 'listening', port: 49200 })).toEqual({
      kind: 'transfer',
      port: 49200,
    });
    expect(migrationStep(migration('transferring', 49200), undefined, 'host-dst', { migrationId, event: 'resumed' })).toEqual({ kind: 'cut-over' });
    // A guest can arrive before the destination's listening report was recorded.
    expect(migrationStep(migration('preparing'), undefined, 'host-dst', { migrationId, event: 'resumed' })).toEqual({ kind: 'cut-over' });
    expect(migrationStep(migration('cut-over', 49200), undefined, 'host-src', { migrationId, event: 'converged', downtimeMs: 3, totalMs: 80 })).toEqual({
      kind: 'clean-up',
      downtimeMs: 3,
      totalMs: 80,
    });
    expect(migrationStep(migration('cleaning-up', 49200), undefined, 'host-src', { migrationId, event: 'cleaned' })).toEqual({ kind: 'complete' });
  });

  it('answers a report that arrives again as the first, without writing', () => {
    expect(migrationStep(migration('transferring', 49200), undefined, 'host-dst', { migrationId, event: 'listening', port: 49200 })).toEqual({ kind: 'none' });
    expect(migrationStep(migration('cleaning-up'), undefined, 'host-dst', { migrationId, event: 'resumed' })).toEqual({ kind: 'none' });
    expect(migrationStep(migration('cleaning-up'), undefined, 'host-src', { migrationId, event: 'converged' })).toEqual({ kind: 'none' });
    expect(migrationStep(undefined, ended('completed'), 'host-src', { migrationId, event: 'cleaned' })).toEqual({ kind: 'none' });
    expect(migrationStep(undefined, ended('aborted'), 'host-dst', { migrationId, event: 'failed', reason: 'again' })).toEqual({ kind: 'none' });
  });

  it('aborts before the cut-over, and refuses to after it: the guest runs at the destination then', () => {
    expect(migrationStep(migration('transferring', 49200), undefined, 'host-src', { migrationId, event: 'failed', reason: 'QEMU: connection reset' })).toEqual({
      kind: 'abort',
      reason: 'source host host-src: QEMU: connection reset',
    });
    expect(migrationStep(migration('preparing'), undefined, 'host-dst', { migrationId, event: 'failed', reason: 'image unusable' })).toEqual({
      kind: 'abort',
      reason: 'destination host host-dst: image unusable',
    });
    expect(() => migrationStep(migration('cut-over'), undefined, 'host-src', { migrationId, event: 'failed', reason: 'late' })).toThrow(/too late to abort/);
  });

  it('refuses a host at neither end, the wrong end, another migration and reports out of order', () => {
    const refused = (fn: () => unknown, message: RegExp) => {
      expect(fn).toThrow(MigrationReportRefused);
      expect(fn).toThrow(message);
    };
    refused(() => migrationStep(migration('preparing'), undefined, 'host-other', { migrationId, event: 'failed', reason: 'x' }), /neither end/);
    refused(
      () => migrationStep(migration('transferring', 1), undefined, 'host-src', { migrationId, event: 'resumed' }),
      /only the target host reports resumed/,
    );
    refused(() => migrationStep(migration('preparing'), undefined, 'host-src', { migrationId, event: 'listening', port: 49200 }), /only the target/);
    refused(() => migrationStep(migration('cut-over'), undefined, 'host-dst', { migrationId, event: 'cleaned' }), /only the source/);
    refused(() => migrationStep(migration('preparing'), undefined, 'host-dst', { migrationId: 'mig-0000000000ff', event: 'resumed' }), /not under way/);
    refused(() => migrationStep(undefined, undefined, 'host-dst', { migrationId, event: 'resumed' }), /not under way/);
    refused(() => migrationStep(migration('transferring', 49200), undefined, 'host-dst', { migrationId, event: 'listening', port: 49201 }), /on another port/);
    refused(() => migrationStep(migration('transferring', 49200), undefined, 'host-src', { migrationId, event: 'converged' }), /not cut over yet/);
    refused(() => migrationStep(migration('preparing'), undefined, 'host-src', { migrationId, event: 'cleaned' }), /not cut over yet/);
    // An aborted migration's guest never moved: a late resumed is refused, not taken as a cut-over.
    refused(() => migrationStep(undefined, ended('aborted'), 'host-dst', { migrationId, event: 'resumed' }), /already aborted/);
  });
});
