import { describe, expect, it, vi } from 'vitest';
import type { HostMigrationRole, MigrationPhase, ReportMigrationRequest } from '#events/migrations.ts';
import type { VmLaunchSpec } from '#events/vm-config.ts';
import type { MigrationRoute } from '#host-agent/data-plane/desired-state.ts';
import { VmMigrations, type VmMigrationsOptions } from '#host-agent/vm-migrations.ts';
import type { MigrationFigures } from '#host-agent/vm-runtime/live-migration.ts';

const vmId = 'vm-0000000000d1';
const launch: VmLaunchSpec = { powerState: 'running', bootGeneration: 0, machineType: 's1.nano', memoryMiB: 96, vcpus: 1, hostname: 'mover' };
const role = (part: 'source' | 'target', phase: MigrationPhase, port?: number): HostMigrationRole => ({
  migrationId: 'mig-0000000000d1',
  role: part,
  phase,
  peerHostId: part === 'source' ? 'host-dst' : 'host-src',
  peerAddress: part === 'source' ? '10.9.0.2' : '10.9.0.1',
  peerCertificate: 'PEER-CA',
  ...(port ? { port } : {}),
  networkId: 'net-1',
  ip: '10.0.0.7',
});

/** A host's part in migrations, with the runtime, data plane and control plane it talks to standing by and recording. */
function host(guest: { send?: () => Promise<MigrationFigures>; resumed?: Promise<void> } = {}, bounds: Partial<VmMigrationsOptions> = {}) {
  const reports: ReportMigrationRequest['event'][] = [];
  const routes: string[] = [];
  const calls: string[] = [];
  const options: VmMigrationsOptions = {
    hostId: 'host-x',
    address: '10.9.0.9',
    runtime: {
      migration: {
        receive: async () => ({ resumed: guest.resumed ?? Promise.resolve() }),
        send: async (_vmId: string, to: { port: number; diskPort?: number; credentials: string }, { onStop }: { onStop: () => void }) => {
          calls.push(`send to ${to.port}, disks to ${to.diskPort}, with ${to.credentials}`);
          onStop();
          return (guest.send ?? (async () => ({ downtimeMs: 3, totalMs: 90, transferredBytes: 1 })))();
        },
        resumeHere: async () => void calls.push('resume here'),
      },
      stop: async () => void calls.push('stop'),
      forget: () => void calls.push('forget'),
    } as unknown as VmMigrationsOptions['runtime'],
    admission: { admit: async () => 49_200, close: async () => void calls.push('port closed') } as unknown as VmMigrationsOptions['admission'],
    identity: {
      credentialsFor: async (name: string, end: string, peerCa: string) => `${end} credentials of ${name} trusting ${peerCa}`,
      release: async (name: string) => void calls.push(`released ${name}`),
    } as unknown as VmMigrationsOptions['identity'],
    lifecycle: {
      prepareArrival: async () => ({ vmId, memoryMiB: 96, vcpus: 1, settings: {} }),
      forgetArrival: async () => void calls.push('forget arrival'),
      forgetDeparted: (_vmId: string, disks: { diskId: string }[]) => void calls.push(`forget departed ${disks.map((disk) => disk.diskId).join(',')}`),
    } as unknown as VmMigrationsOptions['lifecycle'],
    report: async (_vmId, report) => {
      reports.push(report.event);
      return {};
    },
    converged: async () => true,
    route: async (now: ReadonlyMap<string, MigrationRoute>) => void routes.push(JSON.stringify(now.get(vmId) ?? null)),
    stageRedirect: async (_networkId, ip, endpoint) => void calls.push(`staged ${ip} to ${endpoint}`),
    redirectNow: async (_networkId, ip) => void calls.push(`redirected ${ip}`),
    knowsNetworkOf: () => true,
    log: () => {},
    ...bounds,
  };
  return { migrations: new VmMigrations(options), reports, routes, calls };
}

describe('a host’s part in live migrations', () => {
  it('as the destination: routes the address to the guest, listens on an admitted port, says listening, then resumed at once', async () => {
    const { migrations, reports, routes, calls } = host();
    migrations.update([{ vmId, launch, migration: role('target', 'preparing') }]);
    await vi.waitFor(() => expect(reports).toEqual(['listening', 'resumed']));
    expect(routes[0]).toBe(JSON.stringify({ runsHere: true }));
    await vi.waitFor(() => expect(calls).toContain('port closed'));
    // It ends completed: the guest that arrived stays, only the route override goes.
    migrations.update([]);
    expect(calls).not.toContain('stop');
    expect(routes.at(-1)).toBe('null');
  });

  it('as the source: sends once the destination listens, redirects at STOP, lets go once every host holds the endpoint', async () => {
    const { migrations, reports, routes, calls } = host();
    const withDisk = { ...launch, disks: [{ diskId: 'disk-0000000000d1', poolId: 'pool-1', sizeGiB: 1, iops: 3000, throughputMiBps: 125, slot: 0 }] };
    migrations.update([{ vmId, launch: withDisk, migration: role('source', 'preparing') }]);
    expect(reports).toEqual([]);
    migrations.update([{ vmId, launch: withDisk, migration: role('source', 'transferring', 49_200) }]);
    // The data plane is told of the redirect once the guest was sent, not at STOP.
    await vi.waitFor(() => expect(routes).toEqual([JSON.stringify({ runsHere: false, endpoint: '10.9.0.2' })]));
    // Staged before the transfer, so the redirect at STOP is one route change; the disks go to the port beside the migration port.
    expect(calls.slice(0, 3)).toEqual([
      'staged 10.0.0.7 to 10.9.0.2',
      'send to 49200, disks to 49300, with client credentials of mig-0000000000d1 trusting PEER-CA',
      'redirected 10.0.0.7',
    ]);
    migrations.update([{ vmId, launch: withDisk, migration: role('source', 'cut-over', 49_200) }]);
    await vi.waitFor(() => expect(reports).toEqual(['converged', 'cleaned']));
    // Its copies of the disks go once it let go: their data lives at the destination now.
    await vi.waitFor(() => expect(calls.at(-1)).toBe('forget departed disk-0000000000d1'));
  });

  it('either end: a peer host that registered no migration certificate gets no guest and sends none; the migration is aborted, saying why', async () => {
    for (const part of ['target', 'source'] as const) {
      const failures: string[] = [];
      const { migrations, calls } = host(
        {},
        {
          report: async (_vmId, report) => {
            if (report.event === 'failed') failures.push(report.reason);
            return {};
          },
        },
      );
      const { peerCertificate: _, ...uncertified } = role(part, part === 'target' ? 'preparing' : 'transferring', part === 'target' ? undefined : 49_200);
      migrations.update([{ vmId, launch, migration: uncertified }]);
      await vi.waitFor(() => expect(failures).toEqual([`host ${uncertified.peerHostId} registered no live-migration certificate: its agent must be upgraded`]));
      expect(calls.filter((call) => call.startsWith('send'))).toEqual([]);
    }
  });

  it('as the source: a transfer that fails takes the route back and aborts the migration', async () => {
    const { migrations, reports, routes, calls } = host({ send: async () => Promise.reject(new Error('the migration failed: connection reset')) });
    migrations.update([{ vmId, migration: role('source', 'transferring', 49_200) }]);
    await vi.waitFor(() => expect(reports).toEqual(['failed']));
    // Redirected at STOP, back to the guest's interface once it failed; the data plane's state never kept the redirect.
    expect(calls.filter((call) => call.startsWith('redirected'))).toEqual(['redirected 10.0.0.7', 'redirected 10.0.0.7']);
    expect(routes).toEqual(['null']);
    expect(migrations.migrationRoutes().has(vmId)).toBe(false);
  });

  it('as the source: runs its copy again when the migration was aborted after the guest was sent', async () => {
    const { migrations, calls } = host();
    migrations.update([{ vmId, migration: role('source', 'transferring', 49_200) }]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    migrations.update([]);
    await vi.waitFor(() => expect(calls).toContain('resume here'));
  });

  it('as the destination: a migration aborted before the guest arrived leaves nothing running here', async () => {
    const { migrations, calls } = host({ resumed: new Promise(() => {}) });
    migrations.update([{ vmId, launch, migration: role('target', 'preparing') }]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    migrations.update([]);
    await vi.waitFor(() => expect(calls).toContain('stop'));
  });

  it('as the destination after a restart mid-transfer: its QEMU went with the old agent, so it says the migration failed', async () => {
    const { migrations, reports } = host();
    migrations.update([{ vmId, launch, migration: role('target', 'transferring', 49_200) }]);
    await vi.waitFor(() => expect(reports).toEqual(['failed']));
  });

  it('as the destination: gives up on a guest that never arrives (its source died before sending), so the migration does not hang', async () => {
    const { migrations, reports } = host({ resumed: new Promise(() => {}) }, { arrivalBoundMs: 300 });
    migrations.update([{ vmId, launch, migration: role('target', 'preparing') }]);
    await vi.waitFor(() => expect(reports).toEqual(['listening', 'failed']), { timeout: 3_000 });
  });

  it('as the source: gives up on a destination that never listens, so the migration does not hang', async () => {
    const { migrations, reports } = host({}, { preparingBoundMs: 1_500 });
    migrations.update([{ vmId, migration: role('source', 'preparing') }]);
    // Config updates meanwhile do not stack up more watches.
    migrations.update([{ vmId, migration: role('source', 'preparing') }]);
    await vi.waitFor(() => expect(reports).toEqual(['failed']), { timeout: 5_000 });
  });
});
