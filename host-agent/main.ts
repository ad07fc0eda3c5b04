import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { KMSClient } from '@aws-sdk/client-kms';
import { SQSClient } from '@aws-sdk/client-sqs';
import { z } from 'zod';
import { resourceId, underlayAddress } from '#events/identifiers.ts';
import { type AgentConfig, HostAgent } from './agent.ts';
import { ImageCache } from './image-cache.ts';
import { NoRuntime } from './vm-runtime/no-runtime.ts';
import { ProcessRuntime } from './vm-runtime/process-runtime.ts';
import { checkQemu } from './vm-runtime/qemu-capability.ts';
import { QemuRuntime } from './vm-runtime/qemu-runtime.ts';

const usage = `usage: host-agent --host-id ID --address IPV4 --api-url URL --token-file PATH [--capacity N] [--control-socket PATH] [--dns-server ADDR[:PORT]]... [--metadata-tokens-per-second N] [--bid-port PORT] [--spill-dir DIR] [--resync-seconds S] [--netns NAME] [--runtime qemu|process|none] [--runtime-fallback none|process] [--qemu-binary PATH] [--vm-dir DIR]
--control-socket: the status and control endpoint, a unix socket only its owner can open (default
/run/stratoplane/<host-id>/agent.sock as root, else under the temporary folder); try
\`curl -s --unix-socket PATH http://agent/status\`.
--dns-server: what VMs' outbound proxies resolve names with (the host's resolver when absent).
--metadata-tokens-per-second: identity tokens one VM may mint a second (default 20, bursts of 5x).
--netns: program real VXLAN tunnels and routes into that Linux network namespace (the host's; needs
CAP_NET_ADMIN), and send VMs' outbound traffic from it; without it the forwarding table is kept in memory only.
--runtime: where VMs run: qemu (real guests booted from their images: KVM when usable, else TCG; each
VM's tap goes into --netns, without which guests get no NIC), process (default: one placeholder process
per VM, no guest) or none (the agent runs no VMs). The host registers it; placement puts no VM on a host
that runs none. With qemu, the agent checks at start that QEMU runs (--qemu-binary, default
qemu-system-x86_64 on the PATH) and, with --netns, that it is root; if not, it says what is missing and
refuses to start, unless --runtime-fallback says what to run instead (none: this host runs no VMs;
process: placeholders).
--vm-dir: VMs' files (console, QMP socket), the image cache, unpacked images and storage pools (pools/<poolId>/<diskId>.raw; default
/var/lib/stratoplane/<host-id> as root, else under the temporary folder).
Each flag may also come from the environment: HOST_ID, HOST_ADDRESS, STRATOPLANE_API_URL, HOST_AGENT_TOKEN_FILE,
HOST_CAPACITY, HOST_AGENT_CONTROL_SOCKET, HOST_AGENT_DNS_SERVERS (comma-separated), HOST_AGENT_METADATA_TOKENS_PER_SECOND, HOST_AGENT_BID_PORT, HOST_AGENT_SPILL_DIR,
HOST_AGENT_RESYNC_SECONDS, HOST_AGENT_NETNS, HOST_AGENT_RUNTIME, HOST_AGENT_RUNTIME_FALLBACK, HOST_AGENT_QEMU_BINARY, HOST_AGENT_VM_DIR; or the token itself from HOST_AGENT_TOKEN.
The token is a host token from \`npm run issue-token -- --host ID --ttl 30d\`; the file is re-read on every call,
so rotating it needs no restart. AWS credentials, region and AWS_ENDPOINT_URL as for any AWS SDK.`;

/** Under /run as root (as a system daemon's), else in the temporary folder; either way in a folder of its own. */
function defaultControlSocket(hostId: string): string {
  const base = process.getuid?.() === 0 ? '/run/stratoplane' : path.join(tmpdir(), `stratoplane-${process.getuid?.() ?? 'agent'}`);
  return path.join(base, hostId, 'agent.sock');
}

/** Under /var/lib as root (as a system daemon's state), else in the temporary folder. */
function defaultVmDir(hostId: string): string {
  return process.getuid?.() === 0 ? path.join('/var/lib/stratoplane', hostId) : path.join(tmpdir(), `stratoplane-vms-${hostId}`);
}

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

const Config = z.object({
  hostId: resourceId,
  // Refused here as the API would refuse it: the agent would otherwise retry registering forever.
  address: underlayAddress,
  apiUrl: z.url(),
  token: z.union([z.strictObject({ file: z.string().min(1) }), z.strictObject({ value: z.string().min(20) })], {
    message: 'a host token is required: --token-file PATH, HOST_AGENT_TOKEN_FILE or HOST_AGENT_TOKEN',
  }),
  capacity: z.coerce.number().int().min(1).max(10_000),
  metadataTokensPerSecond: z.coerce.number().int().min(1).max(100_000).optional(),
  controlSocket: z.string().min(1).max(100, 'a unix socket path is at most 100 characters'),
  dnsServers: z.array(z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\])(:\d{1,5})?$/, 'a DNS server is an IP address, optionally with :port')),
  bidPort: z.coerce.number().int().min(0).max(65_535),
  spillDir: z.string().min(1),
  resyncSeconds: z.coerce.number().min(1),
  netns: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a network namespace name (letters, digits, _ . -)')
    .optional(),
  runtime: z.enum(['qemu', 'process', 'none'], { message: 'the runtime is qemu, process or none' }),
  runtimeFallback: z.enum(['none', 'process'], { message: 'the runtime fallback is none or process' }).optional(),
  qemuBinary: z.string().min(1).optional(),
  vmDir: z.string().min(1),
});

const { values } = parseArgs({
  options: {
    'host-id': { type: 'string' },
    address: { type: 'string' },
    'api-url': { type: 'string' },
    'token-file': { type: 'string' },
    capacity: { type: 'string' },
    'control-socket': { type: 'string' },
    'metadata-tokens-per-second': { type: 'string' },
    'dns-server': { type: 'string', multiple: true },
    'bid-port': { type: 'string' },
    'spill-dir': { type: 'string' },
    'resync-seconds': { type: 'string' },
    netns: { type: 'string' },
    runtime: { type: 'string' },
    'runtime-fallback': { type: 'string' },
    'qemu-binary': { type: 'string' },
    'vm-dir': { type: 'string' },
  },
});

const parsed = Config.safeParse({
  hostId: values['host-id'] ?? process.env.HOST_ID,
  address: values.address ?? process.env.HOST_ADDRESS,
  apiUrl: values['api-url'] ?? process.env.STRATOPLANE_API_URL,
  token:
    (values['token-file'] ?? process.env.HOST_AGENT_TOKEN_FILE)
      ? { file: values['token-file'] ?? process.env.HOST_AGENT_TOKEN_FILE }
      : process.env.HOST_AGENT_TOKEN
        ? { value: process.env.HOST_AGENT_TOKEN }
        : undefined,
  capacity: values.capacity ?? process.env.HOST_CAPACITY ?? 32,
  metadataTokensPerSecond: values['metadata-tokens-per-second'] ?? process.env.HOST_AGENT_METADATA_TOKENS_PER_SECOND,
  controlSocket: values['control-socket'] ?? process.env.HOST_AGENT_CONTROL_SOCKET ?? defaultControlSocket(values['host-id'] ?? process.env.HOST_ID ?? 'host'),
  dnsServers: values['dns-server'] ?? (process.env.HOST_AGENT_DNS_SERVERS ?? '').split(',').filter(Boolean),
  bidPort: values['bid-port'] ?? process.env.HOST_AGENT_BID_PORT ?? 0,
  // Shuffle partitions can be large: on disk, one folder per host.
  spillDir:
    values['spill-dir'] ?? process.env.HOST_AGENT_SPILL_DIR ?? path.join(tmpdir(), `stratoplane-shuffle-${values['host-id'] ?? process.env.HOST_ID ?? 'host'}`),
  resyncSeconds: values['resync-seconds'] ?? process.env.HOST_AGENT_RESYNC_SECONDS ?? 300,
  netns: values.netns ?? process.env.HOST_AGENT_NETNS,
  runtime: values.runtime ?? process.env.HOST_AGENT_RUNTIME ?? 'process',
  runtimeFallback: values['runtime-fallback'] ?? (process.env.HOST_AGENT_RUNTIME_FALLBACK || undefined),
  qemuBinary: values['qemu-binary'] ?? (process.env.HOST_AGENT_QEMU_BINARY || undefined),
  vmDir: values['vm-dir'] ?? process.env.HOST_AGENT_VM_DIR ?? defaultVmDir(values['host-id'] ?? process.env.HOST_ID ?? 'host'),
});
if (!parsed.success) {
  console.error(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('\n'));
  console.error(usage);
  process.exit(2);
}
const config = parsed.data;

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
const agent = new HostAgent({ ...config, token, resyncIntervalMs: config.resyncSeconds * 1000, vmRuntime }, new SQSClient({}), new KMSClient({}));
let controlSocket: string;
try {
  controlSocket = await agent.start();
} catch (error) {
  console.error(`[agent ${config.hostId}] ${(error as Error).message}`);
  process.exit(1);
}
const dataPlane = agent.dataPlaneStatus();
console.error(
  `[agent ${config.hostId}] data plane: ${dataPlane.mode} (${dataPlane.reason}); status: curl -s --unix-socket ${controlSocket} http://agent/status`,
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
