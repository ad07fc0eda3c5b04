import { ApiError } from '#events/api-client.ts';
import type { HostMigrationRole, ReportMigrationRequest } from '#events/migrations.ts';
import type { VmLaunchSpec } from '#events/vm-config.ts';
import type { MigrationRoute } from './data-plane/desired-state.ts';
import { diskPortOf, type MigrationAdmission } from './data-plane/migration-admission.ts';
import type { VmLifecycle } from './vm-lifecycle.ts';
import type { MigrationFigures } from './vm-runtime/live-migration.ts';
import type { MigrationIdentity } from './vm-runtime/migration-tls.ts';
import type { GuestMigration, VmRuntime } from './vm-runtime/vm-runtime.ts';

export interface VmMigrationsOptions {
  hostId: string;
  /** This host's underlay address: where a destination's QEMU listens. */
  address: string;
  runtime: VmRuntime & { migration: GuestMigration };
  admission: MigrationAdmission;
  /** This host's TLS identity in migrations: each end checks the other is the host the control plane named. */
  identity: MigrationIdentity;
  lifecycle: VmLifecycle;
  /** Sends a report of a migration to the control plane; resolves with the phase it is in after it (undefined: it ended). */
  report: (vmId: string, report: ReportMigrationRequest) => Promise<{ phase?: string; outcome?: string }>;
  /** For a source: whether every host that needs the VM's new endpoint holds it. */
  converged: (vmId: string) => Promise<boolean>;
  /** Programs the data plane with these routes of moving VMs over what the forwarding table says; resolves once programmed. */
  route: (routes: ReadonlyMap<string, MigrationRoute>) => Promise<void>;
  /** Readies the source's redirect of the VM's address to the destination, so that `redirectNow` is one route change. */
  stageRedirect: (networkId: string, ip: string, endpoint: string) => Promise<void>;
  /** Sends the VM's address into the tunnel now (at the guest's last pause), or back to its own interface (`back`). */
  redirectNow: (networkId: string, ip: string, back?: { vmId: string }) => Promise<void>;
  /** Whether the forwarding table has the VM's network (a destination joins it as the migration starts). */
  knowsNetworkOf: (vmId: string) => boolean;
  log: (message: string) => void;
  /** A transfer not completed within this is cancelled (ms). */
  transferBoundMs?: number;
  /** A destination not listening within this after the migration started is given up on by the source (ms). */
  preparingBoundMs?: number;
  /** A destination whose guest has not arrived within this after it listened gives up (ms). */
  arrivalBoundMs?: number;
  /** How long a source waits for every host to hold the new endpoint before it lets go anyway (ms). */
  convergenceBoundMs?: number;
}

/** One migration this host is an end of, as far as this agent took it. */
interface Part {
  role: HostMigrationRole;
  /** The VM's launch spec, as last fetched. */
  launch?: VmLaunchSpec;
  /** The source's next look at a destination that is still preparing. */
  watch?: NodeJS.Timeout;
  /** What runs now (one step at a time per migration). */
  running?: Promise<void>;
  /** The destination's QEMU listens on this admitted port. */
  port?: number;
  /** The source sent the guest: QEMU's figures. */
  figures?: MigrationFigures;
  /** The destination: the guest runs here. */
  arrived?: boolean;
  /** This host's part is over: nothing more to do. */
  done?: boolean;
  firstSeenAt: number;
}

/**
 * This host's parts in live migrations, driven from its VM configurations (each migration's phase
 * as the control plane recorded it) and told back as reports. As a destination it starts the VM's
 * QEMU waiting for its guest behind an admission of the source's address only, routes the VM's
 * address to it, says where it listens, and says at once when the guest runs here (that commits
 * the VM's new endpoint). As a source it sends the guest once the destination listens, redirects
 * the VM's traffic to the destination the moment the guest pauses for its last copy (before any
 * other host knows), waits until every host that needs the new endpoint holds it, then lets go.
 * Anything that fails before the cut-over is reported as failed, which aborts the migration: the
 * guest runs on at the source.
 */
export class VmMigrations {
  private readonly parts = new Map<string, Part>();
  private readonly routes = new Map<string, MigrationRoute>();
  private closed = false;

  constructor(private readonly options: VmMigrationsOptions) {}

  /** The VMs' configurations as last fetched: each migration this host is an end of, and its phase. */
  update(vms: readonly { vmId: string; launch?: VmLaunchSpec; migration?: HostMigrationRole }[]): void {
    if (this.closed) return;
    const current = new Map(vms.filter((vm) => vm.migration).map((vm) => [vm.vmId, vm]));
    for (const [vmId, part] of this.parts) {
      // Ended (or another one started): its routes go back to what the forwarding table says.
      if (current.get(vmId)?.migration?.migrationId !== part.role.migrationId) this.end(vmId, part);
    }
    for (const [vmId, vm] of current) {
      const role = vm.migration!;
      let part = this.parts.get(vmId);
      if (!part) {
        part = { role, firstSeenAt: Date.now() };
        this.parts.set(vmId, part);
      }
      part.role = role;
      // Cut over: the guest runs here (this agent may have started after it arrived).
      if (role.role === 'target' && (role.phase === 'cut-over' || role.phase === 'cleaning-up')) part.arrived = true;
      this.advance(vmId, part, vm.launch);
    }
  }

  /** The routes of moving VMs, over what the forwarding table says. */
  migrationRoutes(): ReadonlyMap<string, MigrationRoute> {
    return this.routes;
  }

  /** What is under way, for the agent's status. */
  status() {
    return [...this.parts].map(([vmId, part]) => ({ vmId, ...part.role, ...(part.figures ? { figures: part.figures } : {}) }));
  }

  /** Takes no more steps (the agent stops; its guests, a destination's waiting ones too, stop with it). */
  close(): void {
    this.closed = true;
  }

  private advance(vmId: string, part: Part, launch: VmLaunchSpec | undefined): void {
    part.launch = launch ?? part.launch;
    if (part.running || part.done || this.closed) return;
    const step = this.stepFor(vmId, part, part.launch);
    if (!step) return;
    part.running = step()
      .catch((error: Error) => this.options.log(`vm ${vmId}: migration ${part.role.migrationId}: ${error.message}`))
      .finally(() => {
        part.running = undefined;
        // The phase may have moved on while this step ran: take the next one now.
        if (this.parts.get(vmId) === part) this.advance(vmId, part, undefined);
      });
  }

  /** What this host does next for the migration, in the phase the control plane recorded; undefined: nothing now. */
  private stepFor(vmId: string, part: Part, launch: VmLaunchSpec | undefined): (() => Promise<void>) | undefined {
    const { role } = part;
    if (role.role === 'target') {
      if (role.phase === 'preparing' && part.port === undefined) return () => this.receive(vmId, part, launch);
      // Listening before this agent started: its QEMU went with the agent that ran it.
      if (role.phase === 'transferring' && part.port === undefined) return () => this.fail(vmId, part, 'the destination agent restarted during the transfer');
      return undefined;
    }
    switch (role.phase) {
      case 'preparing':
        // The source watches over the destination's start: one that never listens aborts the migration.
        if (Date.now() - part.firstSeenAt < (this.options.preparingBoundMs ?? 60_000)) {
          part.watch ??= setTimeout(() => {
            part.watch = undefined;
            this.advance(vmId, part, undefined);
          }, 1_000).unref();
          return undefined;
        }
        return () => this.fail(vmId, part, `the destination did not get ready within ${(this.options.preparingBoundMs ?? 60_000) / 1000} s`);
      case 'transferring':
        return part.figures ? undefined : () => this.send(vmId, part);
      case 'cut-over':
      case 'cleaning-up':
        return () => this.letGo(vmId, part);
    }
  }

  /** Destination: the VM's QEMU waits for its guest, admitting only the source; then says where it listens and, at once, when the guest runs here. */
  private async receive(vmId: string, part: Part, launch: VmLaunchSpec | undefined): Promise<void> {
    const { role } = part;
    try {
      if (!launch) throw new Error('no launch spec for the VM');
      const credentials = await this.credentialsFor(role, 'server');
      await this.until(() => this.options.knowsNetworkOf(vmId), 10_000, `network ${role.networkId} never reached this host's forwarding table`);
      const guest = await this.options.lifecycle.prepareArrival({ vmId, ip: role.ip, networkId: role.networkId }, launch);
      this.routes.set(vmId, { runsHere: true });
      await this.options.route(this.routes);
      part.port = await this.options.admission.admit(role.peerAddress);
      const { resumed } = await this.options.runtime.migration.receive(guest, {
        address: this.options.address,
        port: part.port,
        diskPort: diskPortOf(part.port),
        credentials,
      });
      this.options.log(`vm ${vmId}: waiting for its guest from host ${role.peerHostId} on port ${part.port}`);
      await this.options.report(vmId, { migrationId: role.migrationId, event: 'listening', port: part.port });
      // A source that died before it sent (its host gone, say) sends nothing: after a bound the
      // destination gives up, and the migration is aborted.
      const arrivalBoundMs = this.options.arrivalBoundMs ?? 90_000;
      let watch: NodeJS.Timeout | undefined;
      await Promise.race([
        resumed,
        new Promise((_, reject) => {
          watch = setTimeout(() => reject(new Error(`the guest did not arrive within ${arrivalBoundMs / 1000} s of listening`)), arrivalBoundMs);
        }),
      ]).finally(() => clearTimeout(watch));
      part.arrived = true;
      this.options.log(`vm ${vmId}: its guest runs here (migration ${role.migrationId})`);
      try {
        await this.reportHard(vmId, { migrationId: role.migrationId, event: 'resumed' });
      } catch (error) {
        // Refused: the migration was aborted meanwhile, so the source runs its copy again. This one
        // must not run beside it.
        if (error instanceof ApiError && error.status === 409) {
          this.options.log(`vm ${vmId}: its guest arrived after migration ${role.migrationId} was aborted (${error.message}); stopping it here`);
          part.arrived = false;
          await this.options.runtime.stop(vmId);
          this.options.runtime.forget(vmId);
          return;
        }
        throw error;
      }
    } catch (error) {
      await this.fail(vmId, part, (error as Error).message);
    } finally {
      if (part.port !== undefined) await this.options.admission.close(part.port).catch(() => {});
      await this.options.identity.release(role.migrationId).catch(() => {});
    }
  }

  /**
   * This end's TLS credentials for the move, trusting the peer host's migration CA as the control
   * plane recorded it when the migration started. A peer that registered none (an older agent)
   * cannot take part: nothing would say the guest went to, or came from, that host.
   */
  private async credentialsFor(role: HostMigrationRole, end: 'server' | 'client'): Promise<string> {
    if (!role.peerCertificate) throw new Error(`host ${role.peerHostId} registered no live-migration certificate: its agent must be upgraded`);
    return this.options.identity.credentialsFor(role.migrationId, end, role.peerCertificate);
  }

  /** Source: sends the guest; at its last pause its traffic goes to the destination. */
  private async send(vmId: string, part: Part): Promise<void> {
    const { role } = part;
    if (role.port === undefined) return;
    // At STOP one route change and nothing else: the guest's last pause and its first moments at
    // the destination are when it feels any other work on the host. The override is recorded at
    // once (any programming meanwhile keeps the redirect); the data plane is told once it is over.
    const redirect = () => {
      void this.options.redirectNow(role.networkId, role.ip).catch((error: Error) => this.options.log(`vm ${vmId}: ${error.message}`));
      this.routes.set(vmId, { runsHere: false, endpoint: role.peerAddress });
    };
    try {
      const credentials = await this.credentialsFor(role, 'client');
      await this.options.stageRedirect(role.networkId, role.ip, role.peerAddress);
      part.figures = await this.options.runtime.migration
        .send(
          vmId,
          { address: role.peerAddress, port: role.port, diskPort: diskPortOf(role.port), credentials },
          { boundMs: this.options.transferBoundMs ?? 30_000, onStop: redirect },
        )
        .finally(() => this.options.identity.release(role.migrationId).catch(() => {}));
      void this.options.route(this.routes);
      this.options.log(`vm ${vmId}: guest sent to host ${role.peerHostId} in ${part.figures.totalMs} ms (paused ${part.figures.downtimeMs} ms)`);
    } catch (error) {
      // QEMU resumed the guest here: so does its traffic (at once if it had been redirected).
      if (this.routes.delete(vmId)) await this.options.redirectNow(role.networkId, role.ip, { vmId }).catch(() => {});
      await this.options.route(this.routes);
      await this.fail(vmId, part, (error as Error).message);
    }
  }

  /** Source, after the cut-over: keeps forwarding until every host that needs the new endpoint holds it, then lets go. */
  private async letGo(vmId: string, part: Part): Promise<void> {
    const { role } = part;
    if (role.phase === 'cut-over') {
      const bound = this.options.convergenceBoundMs ?? 60_000;
      // A control plane that does not answer for a moment is not converged yet.
      const converged = await this.until(() => this.options.converged(vmId).catch(() => false), bound, '').then(
        () => true,
        () => false,
      );
      if (!converged) this.options.log(`vm ${vmId}: not every host holds its new endpoint after ${bound / 1000} s; letting go anyway`);
      await this.reportHard(vmId, {
        migrationId: role.migrationId,
        event: 'converged',
        ...(part.figures ? { downtimeMs: part.figures.downtimeMs, totalMs: part.figures.totalMs } : {}),
      });
    }
    await this.reportHard(vmId, { migrationId: role.migrationId, event: 'cleaned' });
    part.done = true;
    this.options.lifecycle.forgetDeparted(vmId, part.launch?.disks ?? []);
  }

  /** Reports the migration failed (it is aborted unless it was cut over already), and undoes this host's part. */
  private async fail(vmId: string, part: Part, reason: string): Promise<void> {
    this.options.log(`vm ${vmId}: migration ${part.role.migrationId} failed: ${reason}`);
    part.done = true;
    await this.options
      .report(vmId, { migrationId: part.role.migrationId, event: 'failed', reason: reason.slice(0, 2048) })
      .catch((error: Error) => this.options.log(`vm ${vmId}: the failure of migration ${part.role.migrationId} was not reported: ${error.message}`));
  }

  /**
   * A report the migration cannot go on without: retried, every 2 s at most, for as long as the
   * control plane does not answer (its functions may be down for minutes; the guest runs where it
   * runs meanwhile, and only this report moves the migration on). A refusal is final.
   */
  private async reportHard(vmId: string, report: ReportMigrationRequest): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.options.report(vmId, report);
        return;
      } catch (error) {
        if (this.closed || (error instanceof ApiError && error.status < 500)) throw error;
        if (attempt % 10 === 9)
          this.options.log(`vm ${vmId}: migration ${report.migrationId}: ${report.event} not reported yet (${(error as Error).message}); retrying`);
        await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** attempt)));
      }
    }
  }

  private end(vmId: string, part: Part): void {
    this.parts.delete(vmId);
    clearTimeout(part.watch);
    const finished = part.done;
    part.done = true;
    if (this.routes.delete(vmId)) void this.options.route(this.routes);
    // Aborted after the guest was sent (its destination died before it said the guest runs there):
    // the paused copy here is the guest, and runs on.
    if (part.role.role === 'source' && part.figures && !finished) {
      this.options.log(`vm ${vmId}: migration ${part.role.migrationId} ended without a cut-over after the guest was sent; it runs on here`);
      void this.options.runtime.migration.resumeHere(vmId).catch((error: Error) => this.options.log(`vm ${vmId}: ${error.message}`));
    }
    // A destination whose guest never arrived (the migration was aborted) leaves nothing behind.
    if (part.role.role === 'target' && !part.arrived) {
      void (async () => {
        await this.options.runtime.stop(vmId);
        await part.running;
        this.options.runtime.forget(vmId);
        await this.options.lifecycle.forgetArrival(vmId, part.launch?.disks ?? []);
      })().catch((error: Error) => this.options.log(`vm ${vmId}: ${error.message}`));
    }
  }

  private async until(check: () => boolean | Promise<boolean>, timeoutMs: number, why: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(why);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
