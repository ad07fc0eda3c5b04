import { readFileSync } from 'node:fs';
import path from 'node:path';
import { KMSClient } from '@aws-sdk/client-kms';
import { SQSClient } from '@aws-sdk/client-sqs';
import { type AgentConfig, HostAgent } from './agent.ts';
import { bidRelayListenOf, parseAgentOptions, usage } from './agent-options.ts';
import { ExchangeTokens } from './exchange-tokens.ts';
import { RelayCertificate } from './relay-certificate.ts';
import { ImageCache } from './image-cache.ts';
import { NoRuntime } from './vm-runtime/no-runtime.ts';
import { ProcessRuntime } from './vm-runtime/process-runtime.ts';
import { checkQemu } from './vm-runtime/qemu-capability.ts';
import { QemuRuntime } from './vm-runtime/qemu-runtime.ts';

/**
 * The VM runtime the flags ask for, checked now rather than at the first VM: a QEMU that cannot run
 * here (not installed, or not root for --netns) is said at once, and refused unless the operator
 * named a fallback. Nothing pretends: the host registers what it really runs.
 */
function vmRuntimeOf(options: {
  kind: 'qemu' | 'process' | 'none';
  fallback: 'none' | 'process' | undefined;
  vmDir: string;
  netns: string | undefined;
  qemuBinary: string | undefined;
  say: (message: string) => void;
}): NonNullable<AgentConfig['vmRuntime']> {
  const bootDir = path.join(options.vmDir, 'boot');
  const stateDir = path.join(options.vmDir, 'vms');
  // Storage pools' folders: a disk's data outlives its VMs' reboots, stops and moves off the host.
  const poolsDir = path.join(options.vmDir, 'pools');
  if (options.kind === 'none') return { runtime: new NoRuntime(), bootDir, poolsDir };
  if (options.kind === 'process') return { runtime: new ProcessRuntime({ stateDir }), bootDir, poolsDir };
  const qemu = checkQemu({ binary: options.qemuBinary, netns: options.netns });
  if (qemu.missing.length > 0) {
    const why = `--runtime qemu cannot run here: ${qemu.missing.join('; ')}`;
    if (!options.fallback) {
      throw new Error(
        `${why}. Fix that, or start with --runtime process (a placeholder process per VM, no guest) or --runtime none (no VMs), or add --runtime-fallback none|process to start with that instead.`,
      );
    }
    options.say(
      `${why}. Falling back to --runtime ${options.fallback} (--runtime-fallback): ${options.fallback === 'none' ? 'this host registers as running no VMs, and placement puts none here' : 'this host registers as running placeholder processes, not guests'}`,
    );
    return options.fallback === 'none' ? { runtime: new NoRuntime(why), bootDir, poolsDir } : { runtime: new ProcessRuntime({ stateDir }), bootDir, poolsDir };
  }
  options.say(`QEMU ${qemu.version} (${qemu.accelerator.kind}: ${qemu.accelerator.reason})`);
  return {
    runtime: new QemuRuntime({
      stateDir,
      accelerator: qemu.accelerator,
      ...(options.qemuBinary ? { qemuBinary: options.qemuBinary } : {}),
      ...(options.netns ? { netns: options.netns } : {}),
    }),
    images: new ImageCache({ dir: path.join(options.vmDir, 'images') }),
    bootDir,
    poolsDir,
  };
}

const parsed = parseAgentOptions(process.argv.slice(2), process.env);
if (parsed.kind === 'help') {
  console.log(usage);
  process.exit(0);
}
if (parsed.kind === 'invalid') {
  console.error(`host-agent: ${parsed.message.replaceAll('\n', '\nhost-agent: ')}\n\n${usage}`);
  process.exit(2);
}
const config = parsed.options;

const tokenConfig = config.token;
const token = 'file' in tokenConfig ? () => readFileSync(tokenConfig.file, 'utf8').trim() : () => tokenConfig.value;
try {
  token();
} catch (error) {
  console.error(`cannot read the host token: ${(error as Error).message}`);
  process.exit(2);
}
let vmRuntime: NonNullable<AgentConfig['vmRuntime']>;
try {
  vmRuntime = vmRuntimeOf({
    kind: config.runtime,
    fallback: config.runtimeFallback,
    vmDir: config.vmDir,
    netns: config.netns,
    qemuBinary: config.qemuBinary,
    say: (message) => console.error(`[agent ${config.hostId}] ${message}`),
  });
} catch (error) {
  console.error(`[agent ${config.hostId}] ${(error as Error).message}`);
  process.exit(2);
}
let exchangeTokens: ExchangeTokens;
try {
  exchangeTokens = new ExchangeTokens(config.bidRelayTokens, (message) => console.error(`[agent ${config.hostId}] ${message}`));
} catch (error) {
  console.error(`[agent ${config.hostId}] --bid-relay-tokens: ${(error as Error).message}`);
  process.exit(2);
}
let relayCertificate: RelayCertificate | undefined;
try {
  if (config.bidRelayTlsCert && config.bidRelayTlsKey)
    relayCertificate = new RelayCertificate(config.bidRelayTlsCert, config.bidRelayTlsKey, (message) => console.error(`[agent ${config.hostId}] ${message}`));
} catch (error) {
  console.error(`[agent ${config.hostId}] --bid-relay-tls-cert/--bid-relay-tls-key: ${(error as Error).message}`);
  process.exit(2);
}
const agent = new HostAgent(
  {
    ...config,
    token,
    bidRelay: { listen: bidRelayListenOf(config), tokens: exchangeTokens, ...(relayCertificate ? { certificate: relayCertificate } : {}) },
    resyncIntervalMs: config.resyncSeconds * 1000,
    vmRuntime,
    // The agent's own state beside its VMs': it must outlive the agent, as a replayed token would.
    usedPairTokensFile: path.join(config.vmDir, 'used-pair-tokens.jsonl'),
    pairRecordsFile: path.join(config.vmDir, 'network-pairs.json'),
    migrationTlsDir: path.join(config.vmDir, 'migration-tls'),
    startChecks: { timeoutMs: config.startTimeoutSeconds * 1000 },
  },
  new SQSClient({}),
  new KMSClient({}),
);
let controlSocket: string;
try {
  controlSocket = await agent.start();
} catch (error) {
  console.error(`[agent ${config.hostId}] ${(error as Error).message}`);
  process.exit(1);
}
const dataPlane = agent.dataPlaneStatus();
console.error(
  `[agent ${config.hostId}] started in ${agent.startedInMs} ms; data plane: ${dataPlane.mode} (${dataPlane.reason}); status: curl -s --unix-socket ${controlSocket} http://agent/status`,
);
console.error(
  `[agent ${config.hostId}] VMs: ${vmRuntime.runtime.describe()}${vmRuntime.runtime.kind === 'qemu' && !config.netns ? '; no --netns: guests get no NIC' : ''}`,
);
// The line supervisors and tests wait for.
console.log(`HOST_AGENT_READY ${JSON.stringify({ hostId: config.hostId, controlSocket })}`);

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, async () => {
    if (stopping) return;
    stopping = true;
    await agent.stop();
    process.exit(0);
  });
}
