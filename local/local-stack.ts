import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { scopesFor, type PrincipalKind, type Scope } from '#events/tokens.ts';
import { issueApiToken } from '#tokens/api-tokens.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';
import { startLocalAws, type LocalAws } from './aws/local-aws.ts';
import { hostAgentCredentials } from './aws/iam-principals.ts';
import { projectRoot, startTsProcess, type Started } from './processes.ts';
import type { RunnerInfo } from './runner.ts';
import { Supervised, type SupervisedStatus } from './supervisor.ts';

export interface AgentInfo {
  hostId: string;
  address: string;
  /** The agent's status and control socket (`curl --unix-socket`). */
  controlSocket: string;
}

type StartedAgent = Started<{ hostId: string; controlSocket: string }>;

export interface LocalStack {
  aws: LocalAws;
  /** The first region's runner: the one host agents and most callers use. */
  runner: RunnerInfo;
  /** One runner per region, the first region's first. */
  runners: RunnerInfo[];
  agents: AgentInfo[];
  /**
   * Stops the agent of that host (if it runs) and starts it again, as at start; its supervisor
   * (restarts with back-off, given up after repeated deaths) starts over. What `npm run agent` asks.
   */
  restartAgent(hostId: string): Promise<AgentInfo & { pid: number }>;
  /** Each agent's supervisor: running, waiting to restart, gave up; deaths and restarts. */
  agentStates(): (SupervisedStatus & { hostId: string })[];
  /** Issues an API token as an operator would (`npm run issue-token`), e.g. `issueToken('tenant', 'demo')`. */
  issueToken(kind: PrincipalKind, id: string, scopes?: readonly Scope[]): Promise<string>;
  /**
   * Kills the first region's runner (SIGKILL: functions die mid-invocation, nothing is
   * acknowledged), as after a crash of the machine running the functions.
   */
  killRunner(): Promise<void>;
  /** Starts the killed runner again, on the same state and API port. */
  restartRunner(): Promise<void>;
  /**
   * The processes that stand in for AWS here (the emulator, the runners, the replicator), not the
   * agents: in AWS they run on other machines than the hosts' guests.
   */
  controlPlanePids(): number[];
  stop(): Promise<void>;
}

const bundlingNoise = /Bundling asset|index\.mjs|Done in|^\s*$|npm warn/;

/** The local AWS, the runner and `agentCount` host agents, started in that order. */
export async function startLocalStack(options: {
  agentCount: number;
  /** More environment for every agent (its HOST_AGENT_* settings). */
  agentEnv?: Record<string, string>;
  apiPort?: number;
  localAwsPort?: number;
  hostPrefix?: string;
  /** Per agent, in order: its underlay address and the network namespace it programs (real tunnels); TEST-NET-1 addresses in memory otherwise. */
  agentHosts?: { address: string; netns: string }[];
  /**
   * Regions to run the control plane in, each with its own runner, API and table; with more than
   * one, a replicator keeps the tables in step as global tables do. Default: STRATOPLANE_REGIONS,
   * else AWS_REGION, else us-east-1.
   */
  regions?: string[];
  /** Put the counting, fault-making proxy (local/aws/aws-proxy.ts) between everything and the emulator. */
  awsProxy?: boolean;
  /** Where the runner keeps its synthesized app and checkpoints; inside the project so bundles resolve node_modules. */
  stateDir?: string;
  log?: (line: string) => void;
  /** Aborted while starting: what was started is stopped, and the promise rejects. */
  signal?: AbortSignal;
}): Promise<LocalStack> {
  const log = options.log ?? ((line: string) => console.error(line));
  const stateDir = options.stateDir ?? path.join(projectRoot, '.local-run');
  mkdirSync(stateDir, { recursive: true });
  const aws = await startLocalAws({
    port: options.localAwsPort,
    logFile: path.join(stateDir, 'local-aws.log'),
    log,
    proxy: options.awsProxy,
    signal: options.signal,
  });
  const regions = options.regions ?? (process.env.STRATOPLANE_REGIONS ?? process.env.AWS_REGION ?? 'us-east-1').split(',').filter(Boolean);
  const awsEnv = {
    AWS_ENDPOINT_URL: aws.endpoint,
    AWS_REGION: regions[0]!,
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'test',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'test',
  };
  const signer = new KmsJwsSigner(
    new KMSClient({
      endpoint: awsEnv.AWS_ENDPOINT_URL,
      region: awsEnv.AWS_REGION,
      credentials: { accessKeyId: awsEnv.AWS_ACCESS_KEY_ID, secretAccessKey: awsEnv.AWS_SECRET_ACCESS_KEY },
    }),
    keyAlias('api-tokens', deploymentFromEnvironment()),
  );
  const issueToken = async (kind: PrincipalKind, id: string, scopes: readonly Scope[] = scopesFor[kind]) =>
    (await issueApiToken(signer, { subject: `${kind}:${id}`, scopes, ttlSeconds: 30 * 86_400 })).token;
  const children: Started<unknown>[] = [];
  const supervisors = new Map<string, { info: AgentInfo; supervised: Supervised<StartedAgent> }>();
  const stop = async () => {
    // Agents first: they talk to the runners and the local AWS until they stop.
    await Promise.all([...supervisors.values()].map(({ supervised }) => supervised.stop()));
    await Promise.all(children.reverse().map((child) => child.stop()));
    await aws.stop();
  };
  const startRunner = (region: string, apiPort: number) =>
    startTsProcess<RunnerInfo>({
      entry: 'local/runner.ts',
      env: { ...awsEnv, AWS_REGION: region, STRATOPLANE_REGIONS: regions.join(','), STRATOPLANE_API_PORT: String(apiPort), STRATOPLANE_STATE_DIR: stateDir },
      readyPrefix: 'STRATOPLANE_RUNNER_READY',
      // A first start bundles every function (about a hundred): 170 s measured on two busy cores.
      timeoutMs: 420_000,
      onStderr: (line) => bundlingNoise.test(line) || log(line),
      signal: options.signal,
    });
  try {
    // One at a time: each synthesizes the app and bundles its functions, which two cores feel.
    const regionRunners: Started<RunnerInfo>[] = [];
    for (const [index, region] of regions.entries()) {
      const started = await startRunner(region, index === 0 ? (options.apiPort ?? 0) : 0);
      children.push(started);
      regionRunners.push(started);
    }
    let replicator: Started<unknown> | undefined;
    if (regions.length > 1) {
      replicator = await startTsProcess({
        entry: 'local/replicator.ts',
        env: { ...awsEnv, STRATOPLANE_REGIONS: regions.join(','), STRATOPLANE_STATE_DIR: stateDir },
        readyPrefix: 'STRATOPLANE_REPLICATOR_READY',
        onStderr: log,
        signal: options.signal,
      });
      children.push(replicator);
    }
    let runner = regionRunners[0]!;
    const killRunner = () => runner.stop('SIGKILL');
    const restartRunner = async () => {
      const restarted = await startRunner(regions[0]!, Number(new URL(runner.info.apiUrl).port));
      children[children.indexOf(runner)] = restarted;
      runner = restarted;
      regionRunners[0] = restarted;
    };
    /**
     * How an agent of this stack starts: the same at start, when its supervisor restarts it and
     * when `npm run agent` asks (a new host token each time; the rest of its environment is this
     * process's, HOST_AGENT_* settings included).
     */
    const startAgent = async (info: AgentInfo, netns: string | undefined, signal?: AbortSignal): Promise<StartedAgent> =>
      startTsProcess({
        entry: 'host-agent/main.ts',
        args: [
          '--host-id',
          info.hostId,
          '--address',
          info.address,
          '--capacity',
          '16',
          '--api-url',
          runner.info.apiUrl,
          '--control-socket',
          info.controlSocket,
          '--vm-dir',
          path.join(stateDir, 'agents', info.hostId, 'vms'),
          ...(netns ? ['--netns', netns] : []),
        ],
        env: {
          ...awsEnv,
          ...(await hostAgentCredentials(aws.endpoint, regions[0]!, info.hostId)),
          ...options.agentEnv,
          HOST_AGENT_TOKEN: await issueToken('host', info.hostId),
        },
        readyPrefix: 'HOST_AGENT_READY',
        onStderr: log,
        signal,
      });
    const agents = await Promise.all(
      Array.from({ length: options.agentCount }, async (_, index) => {
        const hostId = `${options.hostPrefix ?? 'host'}-${index + 1}`;
        // 192.0.2.0/24 is TEST-NET-1: recorded as tunnel endpoints, never sent traffic.
        const placed = options.agentHosts?.[index];
        const info: AgentInfo = {
          hostId,
          address: placed?.address ?? `192.0.2.${10 + index + 1}`,
          controlSocket: path.join(stateDir, 'agents', hostId, 'agent.sock'),
        };
        const supervised = new Supervised<StartedAgent>({
          name: `${hostId}'s agent`,
          start: (signal) => startAgent(info, placed?.netns, signal),
          log,
          restartHint: `npm run agent -- --host ${hostId}`,
        });
        supervisors.set(hostId, { info, supervised });
        const started = await supervised.start(options.signal);
        return { ...info, controlSocket: started.info.controlSocket };
      }),
    );
    const restartAgent = async (hostId: string) => {
      const agent = supervisors.get(hostId);
      if (!agent) throw new UnknownAgentError(hostId, [...supervisors.keys()]);
      const started = await agent.supervised.restartNow();
      return { ...agent.info, pid: started.child.pid! };
    };
    return {
      aws,
      get runner() {
        return runner.info;
      },
      get runners() {
        return regionRunners.map((started) => started.info);
      },
      agents,
      restartAgent,
      agentStates: () => [...supervisors.values()].map(({ info, supervised }) => ({ hostId: info.hostId, ...supervised.status() })),
      issueToken,
      killRunner,
      restartRunner,
      controlPlanePids: () =>
        [aws.process?.pid, ...regionRunners.map((started) => started.child.pid), replicator?.child.pid].filter((pid) => pid !== undefined),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

export class UnknownAgentError extends Error {
  override readonly name = 'UnknownAgentError';
  constructor(hostId: string, known: string[]) {
    super(`${hostId} is not one of this stack's hosts (${known.join(', ') || 'it runs no agents'})`);
  }
}
