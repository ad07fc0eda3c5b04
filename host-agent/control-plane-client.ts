import { ForwardingTableResponse } from '#events/endpoints.ts';
import type { RegisterHostRequest } from '#events/api.ts';

export class ControlPlaneError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ControlPlaneError';
  }
}

/** The few API calls a host agent makes: register itself, fetch its whole forwarding table. */
export class ControlPlaneClient {
  constructor(private readonly apiUrl: string) {}

  async registerHost(request: RegisterHostRequest): Promise<{ queueUrl: string }> {
    return (await this.call('POST', '/hosts', request)) as { queueUrl: string };
  }

  async forwardingTable(hostId: string): Promise<ForwardingTableResponse> {
    return ForwardingTableResponse.parse(await this.call('GET', `/hosts/${encodeURIComponent(hostId)}/forwarding-table`));
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const response = await fetch(`${this.apiUrl}${path}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (!response.ok) throw new ControlPlaneError(response.status, `${method} ${path}: ${response.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  }
}
