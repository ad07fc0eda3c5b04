import { tmpdir } from 'node:os';
import path from 'node:path';
import { inject } from 'vitest';
import { type AgentStatus, agentRequest, agentStatus } from '../../host-agent/agent-control-client.ts';
import { startTsProcess, type Started } from '../../local/processes.ts';
import { hostAgentCredentials } from '../../local/aws/iam-principals.ts';
import { tokenFor } from './tokens.ts';

export type { AgentStatus };

export interface RunningAgent {
  hostId: string;
  address: string;
  /** Its status and control socket. */
  controlSocket: string;
  process: Started<{ hostId: string; controlSocket: string }>;
  /** What it said on stderr (its start-up lines, its log), line by line. */
  stderr: string[];
  status(): Promise<AgentStatus>;
  /** Asks its control socket. */
  control(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

/** Starts a real host agent process against the shared local control plane (its first region unless told). */
export async function startAgent(
  hostId: string,
  address: string,
  capacity = 32,
  region: { apiUrl: string; region: string } = { apiUrl: inject('apiUrl'), region: inject('region') },
  extraArgs: string[] = [],
  extraEnv: Record<string, string> = {},
): Promise<RunningAgent> {
  const stderr: string[] = [];
  const started = await startTsProcess<{ hostId: string; controlSocket: string }>({
    entry: 'host-agent/main.ts',
    args: [
      '--host-id',
      hostId,
      '--address',
      address,
      '--capacity',
      String(capacity),
      '--api-url',
      region.apiUrl,
      // VMs' files in the temporary folder, not the machine's /var/lib.
      ...(extraArgs.includes('--vm-dir') ? [] : ['--vm-dir', path.join(tmpdir(), 'stratoplane-test-vms', hostId)]),
      ...extraArgs,
    ],
    env: {
      AWS_ENDPOINT_URL: inject('awsEndpoint'),
      AWS_REGION: region.region,
      // Its own key, checked by the proxy against the region's HostAgentPolicy for this host id.
      ...(await hostAgentCredentials(inject('awsEndpoint'), region.region, hostId)),
      HOST_AGENT_TOKEN: await tokenFor('host', hostId),
      ...extraEnv,
    },
    readyPrefix: 'HOST_AGENT_READY',
    onStderr: (line) => stderr.push(line),
  });
  const { controlSocket } = started.info;
  return {
    hostId,
    address,
    controlSocket,
    process: started,
    stderr,
    status: () => agentStatus(controlSocket),
    control: (method, path, body) => agentRequest(controlSocket, method, path, body),
  };
}

/** Polls until `check` passes or the deadline passes; returns how long it took. */
export async function eventually(check: () => Promise<void>, timeoutMs = 20_000, intervalMs = 50): Promise<number> {
  const started = Date.now();
  let lastError: unknown;
  while (Date.now() - started < timeoutMs) {
    try {
      await check();
      return Date.now() - started;
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
  throw lastError;
}
