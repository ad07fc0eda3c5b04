import { ForwardingTableResponse } from '#events/endpoints.ts';
import { HostVmConfigs } from '#events/vm-config.ts';
import type { ShuffleWorkerReport } from '#events/shuffle.ts';
import type { P256PublicJwk, RegisterHostRequest } from '#events/api.ts';
import type { IssuedCredential } from './service-account-tokens.ts';

export class ControlPlaneError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The API's own `message`, fit to pass on to whoever asked the agent. */
    readonly detail: string,
  ) {
    super(message);
    this.name = 'ControlPlaneError';
  }
}

/** Where the agent's bearer token comes from: read on every call, so a rotated token file takes effect at once. */
export type TokenSource = () => string;

/** The API calls a host agent makes, as its host (a host-scoped bearer token). */
export class ControlPlaneClient {
  /** The last call could not reach the API or the API could not do its work (5xx). */
  private unreachable = false;

  constructor(
    private readonly apiUrl: string,
    private readonly token: TokenSource,
    /** Called on the first call that succeeds after calls failed: what was missed meanwhile can be fetched again. */
    private readonly onContactRestored: () => void = () => {},
  ) {}

  async registerHost(request: RegisterHostRequest): Promise<{ queueUrl: string }> {
    return (await this.call('POST', '/hosts', request)) as { queueUrl: string };
  }

  async acknowledgeEndpoints(hostId: string, acks: { vmId: string; version: number }[]): Promise<void> {
    await this.call('POST', `/hosts/${encodeURIComponent(hostId)}/endpoint-acks`, { acks });
  }

  async publishHostKeys(hostId: string, vmId: string, keys: string[]): Promise<void> {
    await this.call('PUT', `/hosts/${encodeURIComponent(hostId)}/vms/${encodeURIComponent(vmId)}/host-keys`, { keys });
  }

  async hostCredentials(hostId: string, publicKey: P256PublicJwk): Promise<IssuedCredential[]> {
    const { credentials } = (await this.call('POST', `/hosts/${encodeURIComponent(hostId)}/service-account-credentials`, { publicKey })) as { credentials: IssuedCredential[] };
    return credentials;
  }

  async pairKeys(hostId: string): Promise<{ vmId: string; ciphertext: string }[]> {
    const { pairKeys } = (await this.call('GET', `/hosts/${encodeURIComponent(hostId)}/vm-pair-keys`)) as { pairKeys: { vmId: string; ciphertext: string }[] };
    return pairKeys;
  }

  async reportShuffleWorker(hostId: string, jobId: string, vmId: string, report: ShuffleWorkerReport): Promise<void> {
    await this.call('PUT', `/hosts/${encodeURIComponent(hostId)}/shuffle-jobs/${encodeURIComponent(jobId)}/workers/${encodeURIComponent(vmId)}`, report);
  }

  async vmConfigs(hostId: string): Promise<HostVmConfigs> {
    return HostVmConfigs.parse(await this.call('GET', `/hosts/${encodeURIComponent(hostId)}/vm-configs`));
  }

  async forwardingTable(hostId: string): Promise<ForwardingTableResponse> {
    return ForwardingTableResponse.parse(await this.call('GET', `/hosts/${encodeURIComponent(hostId)}/forwarding-table`));
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token()}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(30_000),
      });
      text = await response.text();
    } catch (error) {
      this.unreachable = true;
      throw error;
    }
    if (response.status >= 500) this.unreachable = true;
    else if (this.unreachable) {
      this.unreachable = false;
      this.onContactRestored();
    }
    if (!response.ok) {
      let detail = text;
      try {
        detail = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {}
      throw new ControlPlaneError(response.status, `${method} ${path}: ${response.status} ${text}`, detail);
    }
    return text ? JSON.parse(text) : undefined;
  }
}
