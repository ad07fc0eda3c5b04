import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { resourceId, underlayAddress } from '#events/identifiers.ts';
import { DEFAULT_PEER_PORT } from './shuffle-peers.ts';

export const usage = `usage: host-agent --host-id ID --address IPV4 --api-url URL --token-file PATH [--capacity N] [--auto-placement on|off] [--control-socket PATH] [--dns-server ADDR[:PORT]]... [--metadata-tokens-per-second N] [--bid-port PORT] [--bid-relay-listen ADDR:PORT] [--bid-relay-tokens PATH] [--bid-relay-tls-cert PATH --bid-relay-tls-key PATH] [--spill-dir DIR] [--peer-port PORT] [--resync-seconds S] [--start-timeout S] [--netns NAME] [--runtime qemu|process|none] [--runtime-fallback none|process] [--qemu-binary PATH] [--vm-dir DIR] [-h|--help]
--auto-placement: off keeps placement from choosing this host: it takes only VMs created on it, and guests
moved to it, by name (hostId, targetHostId), as EC2 Dedicated Hosts with auto-placement off (default on).
--control-socket: the status and control endpoint, a unix socket only its owner can open (default
/run/stratoplane/<host-id>/agent.sock as root, else under the temporary folder); try
\`curl -s --unix-socket PATH http://agent/status\`.
--dns-server: what VMs' outbound proxies resolve names with (the host's resolver when absent).
--metadata-tokens-per-second: identity tokens one VM may mint a second (default 20, bursts of 5x).
--start-timeout: how long the agent tries to reach the API at start before it gives up and exits 1
(default 30); an answer that refuses it (a bad token, a wrong URL) ends the start at once.
--bid-relay-listen: where the bid relay takes OpenRTB requests from exchanges: an IPv4 address and port, or
underlay:PORT for this host's --address (default 127.0.0.1, at --bid-port, default any free port). With --netns
an address other than loopback is opened in that namespace.
--bid-relay-tokens: the exchange tokens the relay takes, one line each (\`<tenant-id> sha256:<hex> [label]\`, made by
\`npm run -s bid-exchange-token -- --tenant ID\`); re-read within a second of a change. Without it the relay refuses
every request.
--bid-relay-tls-cert, --bid-relay-tls-key: the relay's TLS certificate and key (PEM, both or neither): with them
it serves HTTPS only (TLS 1.2 at least), so exchange tokens never cross the network in the clear; changed
files are used for new connections within a second. Without them: plain HTTP (loopback or a trusted network only).
--netns: program real VXLAN tunnels and routes into that Linux network namespace (the host's; needs
CAP_NET_ADMIN), and send VMs' outbound traffic from it; without it the forwarding table is kept in memory only.
--runtime: where VMs run: qemu (real guests booted from their images: KVM when usable, else TCG; each
VM's tap goes into --netns, without which guests get no NIC), process (default: one placeholder process
per VM, no guest) or none (the agent runs no VMs). The host registers it; placement puts no VM on a host
that runs none. With qemu, the agent checks at start that QEMU runs (--qemu-binary, default
qemu-system-x86_64 on the PATH) and, with --netns, that it is root; if not, it says what is missing and
refuses to start, unless --runtime-fallback says what to run instead (none: this host runs no VMs;
process: placeholders).
--peer-port: where, on --address, the agent serves other hosts' agents: a moved shuffle worker's spill,
to its new host only, with a ticket the control plane checks (default ${DEFAULT_PEER_PORT}; on loopback at any
free port when --address is not this machine's, as on a development machine).
--vm-dir: VMs' files (console, QMP socket), the image cache, unpacked images, storage pools (pools/<poolId>/<diskId>.raw) and the
ids of the pair tokens the host admitted (used-pair-tokens.jsonl: a restarted agent refuses them again) and, on a
host that moves guests live, its migration CA and certificate (migration-tls/, made with openssl at first start;
default /var/lib/stratoplane/<host-id> as root, else under the temporary folder).
Each flag may also come from the environment: HOST_ID, HOST_ADDRESS, STRATOPLANE_API_URL, HOST_AGENT_TOKEN_FILE,
HOST_CAPACITY, HOST_AUTO_PLACEMENT, HOST_AGENT_CONTROL_SOCKET, HOST_AGENT_DNS_SERVERS (comma-separated), HOST_AGENT_METADATA_TOKENS_PER_SECOND, HOST_AGENT_BID_PORT, HOST_AGENT_BID_RELAY_LISTEN,
HOST_AGENT_BID_RELAY_TOKENS, HOST_AGENT_BID_RELAY_TLS_CERT, HOST_AGENT_BID_RELAY_TLS_KEY, HOST_AGENT_SPILL_DIR, HOST_AGENT_PEER_PORT,
HOST_AGENT_RESYNC_SECONDS, HOST_AGENT_START_TIMEOUT, HOST_AGENT_NETNS, HOST_AGENT_RUNTIME, HOST_AGENT_RUNTIME_FALLBACK, HOST_AGENT_QEMU_BINARY, HOST_AGENT_VM_DIR; or the token itself from HOST_AGENT_TOKEN.
The token is a host token from \`npm run issue-token -- --host ID --ttl 30d\`; the file is re-read on every call,
so rotating it needs no restart. AWS credentials, region and AWS_ENDPOINT_URL as for any AWS SDK: before it
says it is ready, the agent checks that it has them and reaches its queue with them, and exits 1 if not.
Beside \`npm start\`, \`npm run agent -- --host ID\` (re)starts one of its agents with all of this given.`;

/** Under /run as root (as a system daemon's), else in the temporary folder; either way in a folder of its own. */
function defaultControlSocket(hostId: string): string {
  const base = process.getuid?.() === 0 ? '/run/stratoplane' : path.join(tmpdir(), `stratoplane-${process.getuid?.() ?? 'agent'}`);
  return path.join(base, hostId, 'agent.sock');
}

/** Under /var/lib as root (as a system daemon's state), else in the temporary folder. */
function defaultVmDir(hostId: string): string {
  return process.getuid?.() === 0 ? path.join('/var/lib/stratoplane', hostId) : path.join(tmpdir(), `stratoplane-vms-${hostId}`);
}

const Config = z
  .object({
    hostId: resourceId,
    // Refused here as the API would refuse it: the agent would otherwise retry registering forever.
    address: underlayAddress,
    apiUrl: z.url(),
    token: z.union([z.strictObject({ file: z.string().min(1) }), z.strictObject({ value: z.string().min(20) })], {
      message: 'a host token is required: --token-file PATH, HOST_AGENT_TOKEN_FILE or HOST_AGENT_TOKEN',
    }),
    capacity: z.coerce.number().int().min(1).max(10_000),
    autoPlacement: z.enum(['on', 'off'], { message: 'auto-placement is on or off' }),
    metadataTokensPerSecond: z.coerce.number().int().min(1).max(100_000).optional(),
    controlSocket: z.string().min(1).max(100, 'a unix socket path is at most 100 characters'),
    dnsServers: z.array(z.string().regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:]+\])(:\d{1,5})?$/, 'a DNS server is an IP address, optionally with :port')),
    bidPort: z.coerce.number().int().min(0).max(65_535),
    bidRelayListen: z
      .string()
      .regex(/^(\d{1,3}(\.\d{1,3}){3}|underlay):\d{1,5}$/, 'the bid relay listens at ADDR:PORT (an IPv4 address, or underlay for --address)')
      .refine((value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65_535, 'a port is at most 65535')
      .optional(),
    bidRelayTokens: z.string().min(1).optional(),
    bidRelayTlsCert: z.string().min(1).optional(),
    bidRelayTlsKey: z.string().min(1).optional(),
    spillDir: z.string().min(1),
    peerPort: z.coerce.number().int().min(0).max(65_535),
    resyncSeconds: z.coerce.number().min(1),
    startTimeoutSeconds: z.coerce.number().min(1),
    netns: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a network namespace name (letters, digits, _ . -)')
      .optional(),
    runtime: z.enum(['qemu', 'process', 'none'], { message: 'the runtime is qemu, process or none' }),
    runtimeFallback: z.enum(['none', 'process'], { message: 'the runtime fallback is none or process' }).optional(),
    qemuBinary: z.string().min(1).optional(),
    vmDir: z.string().min(1),
  })
  .refine((options) => (options.bidRelayTlsCert === undefined) === (options.bidRelayTlsKey === undefined), {
    message: 'the bid relay takes --bid-relay-tls-cert and --bid-relay-tls-key together, or neither',
    path: ['bidRelayTlsKey'],
  });
export type AgentOptions = z.infer<typeof Config>;

/** Where the bid relay listens, from the options: `--bid-relay-listen`, else 127.0.0.1 at `--bid-port`. */
export function bidRelayListenOf(options: Pick<AgentOptions, 'address' | 'bidPort' | 'bidRelayListen'>): { address: string; port: number } {
  if (!options.bidRelayListen) return { address: '127.0.0.1', port: options.bidPort };
  const separator = options.bidRelayListen.lastIndexOf(':');
  const address = options.bidRelayListen.slice(0, separator);
  return { address: address === 'underlay' ? options.address : address, port: Number(options.bidRelayListen.slice(separator + 1)) };
}

export type ParsedAgentOptions = { kind: 'help' } | { kind: 'invalid'; message: string } | { kind: 'options'; options: AgentOptions };

function readArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      'host-id': { type: 'string' },
      address: { type: 'string' },
      'api-url': { type: 'string' },
      'token-file': { type: 'string' },
      capacity: { type: 'string' },
      'auto-placement': { type: 'string' },
      'control-socket': { type: 'string' },
      'metadata-tokens-per-second': { type: 'string' },
      'dns-server': { type: 'string', multiple: true },
      'bid-port': { type: 'string' },
      'bid-relay-listen': { type: 'string' },
      'bid-relay-tokens': { type: 'string' },
      'bid-relay-tls-cert': { type: 'string' },
      'bid-relay-tls-key': { type: 'string' },
      'spill-dir': { type: 'string' },
      'peer-port': { type: 'string' },
      'resync-seconds': { type: 'string' },
      'start-timeout': { type: 'string' },
      netns: { type: 'string' },
      runtime: { type: 'string' },
      'runtime-fallback': { type: 'string' },
      'qemu-binary': { type: 'string' },
      'vm-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** The agent's command line and environment, checked: its settings, a request for help, or what is wrong (one line per problem). */
export function parseAgentOptions(argv: string[], env: NodeJS.ProcessEnv): ParsedAgentOptions {
  let values: ReturnType<typeof readArgs>['values'];
  try {
    ({ values } = readArgs(argv));
  } catch (error) {
    return { kind: 'invalid', message: (error as Error).message };
  }
  if (values.help) return { kind: 'help' };
  const hostId = values['host-id'] ?? env.HOST_ID;
  const parsed = Config.safeParse({
    hostId,
    address: values.address ?? env.HOST_ADDRESS,
    apiUrl: values['api-url'] ?? env.STRATOPLANE_API_URL,
    token:
      (values['token-file'] ?? env.HOST_AGENT_TOKEN_FILE)
        ? { file: values['token-file'] ?? env.HOST_AGENT_TOKEN_FILE }
        : env.HOST_AGENT_TOKEN
          ? { value: env.HOST_AGENT_TOKEN }
          : undefined,
    capacity: values.capacity ?? env.HOST_CAPACITY ?? 32,
    autoPlacement: values['auto-placement'] ?? (env.HOST_AUTO_PLACEMENT || 'on'),
    metadataTokensPerSecond: values['metadata-tokens-per-second'] ?? env.HOST_AGENT_METADATA_TOKENS_PER_SECOND,
    controlSocket: values['control-socket'] ?? env.HOST_AGENT_CONTROL_SOCKET ?? defaultControlSocket(hostId ?? 'host'),
    dnsServers: values['dns-server'] ?? (env.HOST_AGENT_DNS_SERVERS ?? '').split(',').filter(Boolean),
    bidPort: values['bid-port'] ?? env.HOST_AGENT_BID_PORT ?? 0,
    bidRelayListen: values['bid-relay-listen'] ?? (env.HOST_AGENT_BID_RELAY_LISTEN || undefined),
    bidRelayTokens: values['bid-relay-tokens'] ?? (env.HOST_AGENT_BID_RELAY_TOKENS || undefined),
    bidRelayTlsCert: values['bid-relay-tls-cert'] ?? (env.HOST_AGENT_BID_RELAY_TLS_CERT || undefined),
    bidRelayTlsKey: values['bid-relay-tls-key'] ?? (env.HOST_AGENT_BID_RELAY_TLS_KEY || undefined),
    // Shuffle partitions can be large: on disk, one folder per host.
    spillDir: values['spill-dir'] ?? env.HOST_AGENT_SPILL_DIR ?? path.join(tmpdir(), `stratoplane-shuffle-${hostId ?? 'host'}`),
    peerPort: values['peer-port'] ?? env.HOST_AGENT_PEER_PORT ?? DEFAULT_PEER_PORT,
    resyncSeconds: values['resync-seconds'] ?? env.HOST_AGENT_RESYNC_SECONDS ?? 300,
    startTimeoutSeconds: values['start-timeout'] ?? env.HOST_AGENT_START_TIMEOUT ?? 30,
    netns: values.netns ?? env.HOST_AGENT_NETNS,
    runtime: values.runtime ?? env.HOST_AGENT_RUNTIME ?? 'process',
    runtimeFallback: values['runtime-fallback'] ?? (env.HOST_AGENT_RUNTIME_FALLBACK || undefined),
    qemuBinary: values['qemu-binary'] ?? (env.HOST_AGENT_QEMU_BINARY || undefined),
    vmDir: values['vm-dir'] ?? env.HOST_AGENT_VM_DIR ?? defaultVmDir(hostId ?? 'host'),
  });
  if (!parsed.success) return { kind: 'invalid', message: parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('\n') };
  return { kind: 'options', options: parsed.data };
}
