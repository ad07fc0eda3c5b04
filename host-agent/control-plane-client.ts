import { ApiError, createApiClient, type ApiClient, type ApiResponse } from '#events/api-client.ts';
import type { ShuffleWorkerReport } from '#events/shuffle.ts';
import type { P256PublicJwk, RegisterHostRequest } from '#events/api.ts';
import type { ReportVmStateRequest } from '#events/vm-lifecycle.ts';
import type { ReportMigrationRequest } from '#events/migrations.ts';

/** Where the agent's bearer token comes from: read on every call, so a rotated token file takes effect at once. */
export type TokenSource = () => string;

/**
 * The API calls a host agent makes, as its host (a host-scoped bearer token), over the typed API
 * client. Errors are the client's: `ApiError` for an answer (status, code, the API's `detail`),
 * `ApiUnreachableError` when there was none. The forwarding table and the VM configurations are
 * checked against their schemas before the agent acts on them.
 */
export class ControlPlaneClient {
  /** The last call could not reach the API or the API could not do its work (5xx). */
  private unreachable = false;
  private readonly api: ApiClient;

  constructor(
    apiUrl: string,
    token: TokenSource,
    /** Called on the first call that succeeds after calls failed: what was missed meanwhile can be fetched again. */
    private readonly onContactRestored: () => void = () => {},
  ) {
    this.api = createApiClient({ baseUrl: apiUrl, token, validate: ['getForwardingTable', 'getHostVmConfigs'] });
  }

  registerHost(request: RegisterHostRequest): Promise<ApiResponse<'registerHost'>> {
    return this.tracked(this.api.registerHost({ body: request }));
  }

  /** Says this host's agent is alive. */
  async sendHeartbeat(hostId: string): Promise<void> {
    await this.tracked(this.api.sendHeartbeat({ params: { hostId } }));
  }

  async acknowledgeEndpoints(hostId: string, acks: { vmId: string; version: number }[]): Promise<void> {
    await this.tracked(this.api.acknowledgeEndpoints({ params: { hostId }, body: { acks } }));
  }

  async publishHostKeys(hostId: string, vmId: string, keys: string[]): Promise<void> {
    await this.tracked(this.api.publishHostKeys({ params: { hostId, vmId }, body: { keys } }));
  }

  async hostCredentials(hostId: string, publicKey: P256PublicJwk): Promise<ApiResponse<'issueHostCredentials'>['credentials']> {
    return (await this.tracked(this.api.issueHostCredentials({ params: { hostId }, body: { publicKey } }))).credentials;
  }

  /** A network pair's token from the host's VM `sourceVmId` to `destinationVmId`. */
  requestConnection(sourceVmId: string, destinationVmId: string): Promise<ApiResponse<'requestConnection'>> {
    return this.tracked(this.api.requestConnection({ params: { vmId: sourceVmId }, body: { destinationVmId } }));
  }

  async reportShuffleWorker(hostId: string, jobId: string, vmId: string, report: ShuffleWorkerReport): Promise<void> {
    await this.tracked(this.api.reportShuffleWorker({ params: { hostId, jobId, vmId }, body: report }));
  }

  /** For a worker that moved here: a ticket to fetch its spill from the host holding it. */
  issueShuffleHandoff(hostId: string, jobId: string, vmId: string): Promise<ApiResponse<'issueShuffleHandoff'>> {
    return this.tracked(this.api.issueShuffleHandoff({ params: { hostId, jobId, vmId } }));
  }

  /** For a spill held here: whether a ticket a peer presented lets it fetch (pending) or says it took the spill over (complete). */
  checkShuffleHandoff(hostId: string, jobId: string, vmId: string, ticket: string, toHostId: string): Promise<ApiResponse<'checkShuffleHandoff'>> {
    return this.tracked(this.api.checkShuffleHandoff({ params: { hostId, jobId, vmId }, body: { ticket, toHostId } }));
  }

  /** What the host sees of a VM; a VM that left the host (404, 409) is no error: nothing more to report. */
  async reportVmState(hostId: string, vmId: string, report: ReportVmStateRequest): Promise<void> {
    try {
      await this.tracked(this.api.reportVmState({ params: { hostId, vmId }, body: report }));
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.status === 409)) return;
      throw error;
    }
  }

  /** What this host saw of a live migration it is an end of; answers the migration's phase after it. */
  reportMigration(hostId: string, vmId: string, report: ReportMigrationRequest): Promise<ApiResponse<'reportMigration'>> {
    return this.tracked(this.api.reportMigration({ params: { hostId, vmId }, body: report }));
  }

  /** For the source of a VM's migration: how far its new endpoint has spread. */
  migrationConvergence(hostId: string, vmId: string): Promise<ApiResponse<'getMigrationConvergence'>> {
    return this.tracked(this.api.getMigrationConvergence({ params: { hostId, vmId } }));
  }

  vmConfigs(hostId: string): Promise<ApiResponse<'getHostVmConfigs'>> {
    return this.tracked(this.api.getHostVmConfigs({ params: { hostId } }));
  }

  forwardingTable(hostId: string): Promise<ApiResponse<'getForwardingTable'>> {
    return this.tracked(this.api.getForwardingTable({ params: { hostId } }));
  }

  /** Notes whether the control plane answered: no answer or a 5xx marks it unreachable; the next other answer restores contact. */
  private async tracked<T>(call: Promise<T>): Promise<T> {
    try {
      const result = await call;
      this.answered();
      return result;
    } catch (error) {
      if (error instanceof ApiError && error.status < 500) this.answered();
      else this.unreachable = true;
      throw error;
    }
  }

  private answered(): void {
    if (!this.unreachable) return;
    this.unreachable = false;
    this.onContactRestored();
  }
}
