import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { Message, SQSClient } from '@aws-sdk/client-sqs';
import { type RegisterHostRequest, VerifyConnectionRequest } from '#events/api.ts';
import type { HostVmConfigs } from '#events/vm-config.ts';
import { HostMessageBatch, type NetworkMessage } from '#events/endpoints.ts';
import { ApiError } from '#events/api-client.ts';
import { ControlPlaneClient, type TokenSource } from './control-plane-client.ts';
import { Heartbeats } from './heartbeats.ts';
import { EndpointAcks } from './endpoint-acks.ts';
import { desiredState, vmInterfaceName } from './data-plane/desired-state.ts';
import { LinuxDataPlane, type DataPlaneStatus } from './data-plane/linux-data-plane.ts';
import { ForwardingTable, type LocalVm } from './forwarding-table.ts';
import { METADATA_RATE_LIMITS, MetadataError } from './metadata-server.ts';
import { PairKeys } from './pair-keys.ts';
import { NetworkPairs } from './data-plane/network-pairs.ts';
import { PairAdmissions } from './pair-admissions.ts';
import { PAIR_PORT, postToPeer } from './pair-peers.ts';
import { PairRefusal } from './pair-refusal.ts';
import { PairRecords } from './pair-records.ts';
import { OutboundPairs } from './pair-requests.ts';
import { UsedTokens } from './used-tokens.ts';
import { readSmallBody } from './request-body.ts';
import { ServiceAccountTokens } from './service-account-tokens.ts';
import { VmBridges } from './vm-bridges.ts';
import { BidRelay, type RelayListen } from './bid-relay.ts';
import { ExchangeTokens } from './exchange-tokens.ts';
import type { RelayCertificate } from './relay-certificate.ts';
import { EgressAddressPolicy } from './egress-addresses.ts';
import { directDial, dnsServerResolver, EgressDestinations, systemResolver } from './egress-destinations.ts';
import { NetnsSockets } from './netns-sockets.ts';
import { BridgesOnInterface } from './bridges-on-interface.ts';
import { BridgeRedirects } from './data-plane/bridge-redirects.ts';
import { ShuffleService } from './shuffle-service.ts';
import { DEFAULT_PEER_PORT, ShufflePeerServer } from './shuffle-peers.ts';
import { QueueConsumer } from './queue-consumer.ts';
import { StartProgress } from './start-progress.ts';
import { AgentStartError, checkAwsSettings, checkQueue, refusedForGood } from './start-checks.ts';
import { HOST_CREDENTIAL_SECONDS } from '#tokens/host-credentials.ts';
import type { VmLaunchSpec } from '#events/vm-config.ts';
import type { ImageCache } from './image-cache.ts';
import { VmLifecycle } from './vm-lifecycle.ts';
import { VmMigrations } from './vm-migrations.ts';
import { MigrationAdmission } from './data-plane/migration-admission.ts';
import { MigrationIdentity } from './vm-runtime/migration-tls.ts';
import type { GuestMigration, VmRuntime } from './vm-runtime/vm-runtime.ts';
import { VmStateReports } from './vm-state-reports.ts';

export interface AgentConfig {
  hostId: string;
  address: string;
  capacity: number;
  /** `off`: placement never chooses this host, only creates and moves that name it (registered as such; absent: on). */
  autoPlacement?: 'on' | 'off';
  apiUrl: string;
  /** The host's API bearer token (scope `host`, subject `host:<hostId>`). */
  token: TokenSource;
  /**
   * The agent's status and control endpoint: a unix socket (mode 0600, in a 0700 folder), so only
   * the host's operators reach it, never a VM or another tenant's process.
   */
  controlSocket: string;
  /** Identity tokens one VM may mint a second through its metadata server (bursts of five times that); METADATA_RATE_LIMITS's when absent. */
  metadataTokensPerSecond?: number;
  /** DNS servers the VMs' outbound proxies resolve with (`address` or `address:port`); the host's resolver when absent. */
  dnsServers?: readonly string[];
  /** Where the bid relay listens for OpenRTB requests when `bidRelay` does not say: 127.0.0.1 at this port (0: any free port). */
  bidPort: number;
  /**
   * The bid relay's address (the host's underlay address, for exchanges to reach it) and the
   * exchange tokens it takes; without tokens it refuses every request.
   */
  bidRelay?: { listen?: RelayListen; tokens?: ExchangeTokens; certificate?: RelayCertificate };
  /** Where shuffle partitions of this host's worker VMs are spilled. */
  spillDir: string;
  /**
   * Where the ids of the pair tokens this host admitted are recorded (flushed to disk before each
   * admission), so a restarted agent refuses them as the one before did; absent: kept in memory
   * only (simulated hosts), and a restart forgets them.
   */
  usedPairTokensFile?: string;
  /** Where the network pairs this host admitted and opened are recorded, so the next agent takes them over. */
  pairRecordsFile?: string;
  /** Where the host's TLS identity in live migrations is kept (migration-tls.ts); needed when it moves guests live. */
  migrationTlsDir?: string;
  /** Where, on its underlay address, the agent serves other hosts' agents (a moved worker's spill); DEFAULT_PEER_PORT when absent. */
  peerPort?: number;
  /** Full resync period; messages keep the table current between resyncs. */
  resyncIntervalMs: number;
  /** The host's network namespace, to program real tunnels into; in-memory only without one. */
  netns?: string;
  /**
   * Run what the host offers its VMs and operators (status server, bid relay, per-VM bridges)?
   * Off only for simulated hosts (bench:load runs hundreds per process): they keep every
   * conversation with the control plane and nothing else.
   */
  hostServices?: boolean;
  /**
   * Where the host's VMs run (QemuRuntime: real guests; ProcessRuntime: a placeholder process
   * each; NoRuntime: none), registered with the host (`vmRuntime`, and QEMU's accelerator) so
   * placement knows. Absent: the agent runs no VMs and registers without saying (the simulated
   * hosts of bench:load, which placement must still fill: their VMs are never run).
   */
  vmRuntime?: { runtime: VmRuntime; images?: ImageCache; bootDir: string; poolsDir: string };
  /** Told of every endpoint version the agent applies (a VM's endpoint reached this host). */
  onEndpointApplied?: (vmId: string, version: number) => void;
  /**
   * For an agent people run (main.ts): start() checks the AWS region and credentials, gives up on
   * the API after `timeoutMs` (at once when it refuses the host), and reaches the host's queue; if
   * any fails it rejects with an AgentStartError naming what is missing. Absent (bench:load's
   * simulated hosts): the API is tried until it answers, and nothing else is checked.
   */
  startChecks?: { timeoutMs: number };
}

export interface AgentStats {
  messagesReceived: number;
  entriesApplied: number;
  entriesStale: number;
  messagesRejected: number;
  resyncs: number;
  secretRefreshes: number;
  startedAt: string;
}

/**
 * Credentials last HOST_CREDENTIAL_SECONDS (1 h): renewed at half their life (30 min), well before
 * they expire; a failed renewal is retried at every resync for the 30 minutes left. (Each renewal
 * is 3 API requests per host: see docs/cost-and-scale.md before renewing more often.)
 */
export const SECRETS_RENEWAL_MS = (HOST_CREDENTIAL_SECONDS * 1000) / 2;

const log = (hostId: string, message: string) => console.error(`[agent ${hostId}] ${message}`);

/**
 * A host agent: registers its host, converges its forwarding table from the control plane,
 * then applies the updates pushed to its queue. Its state is visible on a local status endpoint.
 */
export class HostAgent {
  readonly table: ForwardingTable;
  readonly stats: AgentStats = {
    messagesReceived: 0,
    entriesApplied: 0,
    entriesStale: 0,
    messagesRejected: 0,
    resyncs: 0,
    secretRefreshes: 0,
    startedAt: new Date().toISOString(),
  };
  readonly tokens = new ServiceAccountTokens();
  private readonly pairKeys: PairKeys;
  private readonly controlPlane: ControlPlaneClient;
  private consumer: QueueConsumer | undefined;
  /** How long `start` took, once it has. */
  startedInMs: number | undefined;
  private server: http.Server | undefined;
  /** Where VMs' bridges may connect: refuses the host's own and its peers' addresses. */
  private readonly egressAddresses = new EgressAddressPolicy();
  private readonly netnsSockets: NetnsSockets | undefined;
  /** With a host namespace: each VM's metadata server at 169.254.169.254 on its own interface. */
  private bridgeRedirects: BridgeRedirects | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private readonly bridges: VmBridges;
  private readonly bidRelay: BidRelay;
  private readonly shuffle: ShuffleService;
  private readonly shufflePeers: ShufflePeerServer;
  /** Tells the control plane which endpoint versions this agent holds. */
  readonly acks: EndpointAcks;
  /** Tells the control plane this host is alive: its health. */
  private readonly heartbeats: Heartbeats;
  /** Real tunnels, when the agent has a host namespace to program. */
  private dataPlane: LinuxDataPlane | undefined;
  /** Network pairs: admitted to this host's VMs, and opened by them (with a host namespace). */
  private pairAdmissions: PairAdmissions | undefined;
  private outboundPairs: OutboundPairs | undefined;
  /** SSH host keys each local VM uploaded, by key type: forwarded as a whole set on every upload. */
  private readonly hostKeys = new Map<string, Map<string, string>>();
  private localVmIds = new Set<string>();
  /** What each local VM's bridge serves it: egress policy and attributes. */
  private vmConfigs = new Map<string, HostVmConfigs['vms'][number]>();
  /** How each local VM is to run, from the last VM configurations fetched. */
  private launches = new Map<string, VmLaunchSpec | undefined>();
  private readonly lifecycle: VmLifecycle | undefined;
  /** This host's parts in live migrations (QEMU guests in a host namespace only). */
  private migrations: VmMigrations | undefined;
  /** This host's TLS identity in live migrations, when it moves guests live. */
  private migrationIdentity: MigrationIdentity | undefined;
  readonly vmReports: VmStateReports;
  private secretsRefresh: { running: Promise<void>; again: boolean } | undefined;
  private secretsRefreshedAt = 0;
  private secretsFailures = 0;
  private secretsRetry: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly sqs: SQSClient,
    kms: KMSClient,
  ) {
    this.table = new ForwardingTable(config.hostId);
    this.pairKeys = new PairKeys(kms);
    this.controlPlane = new ControlPlaneClient(config.apiUrl, config.token, () => this.catchUp('the control plane answers again'));
    this.shuffle = new ShuffleService(
      config.spillDir,
      sqs,
      (jobId, vmId, report) => this.controlPlane.reportShuffleWorker(config.hostId, jobId, vmId, report),
      (message) => log(config.hostId, message),
      {
        hostId: config.hostId,
        ticket: (jobId, vmId) => this.controlPlane.issueShuffleHandoff(config.hostId, jobId, vmId),
        check: (jobId, vmId, ticket, toHostId) => this.controlPlane.checkShuffleHandoff(config.hostId, jobId, vmId, ticket, toHostId),
      },
    );
    this.shufflePeers = new ShufflePeerServer(this.shuffle, (message) => log(config.hostId, message));
    // With a host namespace, VMs' traffic leaves from there, as from the host's own interfaces.
    this.netnsSockets = config.netns ? new NetnsSockets(config.netns, (message) => log(config.hostId, message)) : undefined;
    this.egressAddresses.setUnderlayAddresses([config.address]);
    const destinations = new EgressDestinations(
      this.egressAddresses,
      config.dnsServers?.length ? dnsServerResolver(config.dnsServers) : systemResolver,
      this.netnsSockets ? (address, port) => this.netnsSockets!.connect(address, port) : directDial,
    );
    this.bridges = new VmBridges(
      {
        destinations,
        policyOf: (vm) => this.vmConfigs.get(vm.vmId)?.egress,
        attributesOf: (vm) => this.vmConfigs.get(vm.vmId)?.attributes,
        shuffle: this.shuffle,
        publishHostKey: (vm, keyType, keyData) => this.publishHostKey(vm, keyType, keyData),
        serviceAccountOf: (vm) => this.tokens.serviceAccountOf(vm.vmId),
        mintToken: (vm, audience) => this.tokens.mint(vm.vmId, audience)?.token,
        pairs: {
          open: (vm, destinationVmId) => this.pairsOrRefuse().open(vm, destinationVmId),
          close: (vm, destinationVmId) => this.pairsOrRefuse().close(vm, destinationVmId),
        },
      },
      (message) => log(config.hostId, message),
      this.netnsSockets ? new BridgesOnInterface(this.netnsSockets, () => this.bridgeRedirects!) : undefined,
      config.metadataTokensPerSecond
        ? { ...METADATA_RATE_LIMITS, tokens: { rate: config.metadataTokensPerSecond, burst: 5 * config.metadataTokensPerSecond } }
        : undefined,
    );
    this.bidRelay = new BidRelay({
      linkOf: (vmId) => this.bridges.bidderOf(vmId),
      tenantOf: (vmId) => (this.bridges.bidderOf(vmId) ? this.vmConfigs.get(vmId)?.tenantId : undefined),
      tokens: config.bidRelay?.tokens ?? new ExchangeTokens(undefined),
      ...(config.bidRelay?.certificate ? { certificate: config.bidRelay.certificate } : {}),
    });
    this.vmReports = new VmStateReports(
      (vmId, report) => this.controlPlane.reportVmState(config.hostId, vmId, report),
      (message) => log(config.hostId, message),
    );
    if (config.vmRuntime) {
      this.lifecycle = new VmLifecycle({
        ...config.vmRuntime,
        ...(config.netns ? { netns: config.netns } : {}),
        report: (vmId, report) => this.vmReports.record(vmId, report),
        log: (message) => log(config.hostId, message),
      });
    }
    this.acks = new EndpointAcks(
      (acks) => this.controlPlane.acknowledgeEndpoints(config.hostId, acks),
      (message) => log(config.hostId, message),
    );
    this.heartbeats = new Heartbeats(
      () => this.controlPlane.sendHeartbeat(config.hostId),
      (message) => log(config.hostId, message),
      undefined,
      // Down meanwhile, its restartable VMs run elsewhere now: what is still ours is fetched first, and stale guests stop.
      () => this.catchUp('silent past the down bound'),
    );
  }

  private get hostServices(): boolean {
    return this.config.hostServices ?? true;
  }

  /** Starts the agent and returns its control socket's path (empty without host services). */
  async start(): Promise<string> {
    const progress = new StartProgress((message) => log(this.config.hostId, message));
    const checks = this.config.startChecks;
    if (checks) await progress.phase('checking the AWS settings', () => checkAwsSettings(this.sqs, this.config.hostId));
    const deadline = checks ? Date.now() + checks.timeoutMs : undefined;
    // Asked for real tunnels and unable to make them: better not to start than to pretend.
    const netns = this.config.netns;
    if (netns)
      this.dataPlane = await progress.phase('opening the data plane', () =>
        LinuxDataPlane.open(netns, this.config.address, (message) => log(this.config.hostId, message)),
      );
    if (netns && this.hostServices) this.bridgeRedirects = await progress.phase('redirecting to host services', () => BridgeRedirects.open(netns));
    const runtime = this.config.vmRuntime?.runtime;
    if (this.config.netns && this.lifecycle && runtime?.migration) {
      if (!this.config.migrationTlsDir)
        throw new AgentStartError('cannot start: a host that moves guests live needs a directory for its migration TLS identity');
      const tlsDir = this.config.migrationTlsDir;
      this.migrationIdentity = await progress
        .phase('opening the migration TLS identity', () => MigrationIdentity.open(tlsDir, this.config.hostId, this.config.address))
        .catch((error: Error) => {
          throw new AgentStartError(`cannot start: ${error.message}`);
        });
      this.migrations = new VmMigrations({
        hostId: this.config.hostId,
        address: this.config.address,
        runtime: runtime as VmRuntime & { migration: GuestMigration },
        admission: await MigrationAdmission.open(this.config.netns),
        identity: this.migrationIdentity,
        lifecycle: this.lifecycle,
        report: (vmId, report) => this.controlPlane.reportMigration(this.config.hostId, vmId, report),
        converged: async (vmId) => (await this.controlPlane.migrationConvergence(this.config.hostId, vmId)).converged,
        route: (routes) => this.dataPlane?.update(desiredState(this.table, this.config.hostId, routes)) ?? Promise.resolve(),
        stageRedirect: (networkId, ip, endpoint) => this.dataPlane?.stageRedirect(networkId, ip, endpoint) ?? Promise.resolve(),
        redirectNow: (networkId, ip, back) => this.dataPlane?.redirectNow(networkId, ip, back && vmInterfaceName(back.vmId)) ?? Promise.resolve(),
        knowsNetworkOf: (vmId) => this.table.routes().some((route) => route.vmId === vmId),
        log: (message) => log(this.config.hostId, message),
      });
    }
    // Before anything can ask to verify a pair token: what the agent before this one admitted.
    if (this.config.usedPairTokensFile) {
      const file = this.config.usedPairTokensFile;
      try {
        this.pairKeys.recordUsedTokensIn(UsedTokens.open(file, (message) => log(this.config.hostId, message)));
      } catch (error) {
        // Without it a restart would reopen replays: better not to start than to pretend.
        throw new AgentStartError(`cannot start: cannot keep the record of used pair tokens at ${file} (${(error as Error).message}): check --vm-dir`);
      }
    }
    if (netns && this.hostServices) await progress.phase('opening network pairs', () => this.openNetworkPairs(netns));
    const controlSocket = this.hostServices ? await progress.phase('opening the control socket', () => this.serveControl()) : '';
    if (this.hostServices) {
      await progress.phase('opening the bid relay', () => this.listenForBids());
      // Other hosts fetch a moved worker's shuffle spill here: its address goes with each report.
      const peers = await progress.phase('opening the shuffle peer port', () =>
        this.shufflePeers.listen(this.config.address, this.config.peerPort ?? DEFAULT_PEER_PORT),
      );
      this.shuffle.spillUrl = peers.url;
      this.shuffle.checkPeerAddress = peers.onUnderlay;
    }
    const { queueUrl } = await progress.phase('registering with the API', () =>
      this.retrying(
        'register',
        () =>
          this.controlPlane.registerHost({
            hostId: this.config.hostId,
            address: this.config.address,
            capacity: this.config.capacity,
            autoPlacement: this.config.autoPlacement ?? 'on',
            ...this.runsVmsWith(),
          }),
        deadline,
      ),
    );
    if (deadline !== undefined) await progress.phase('checking its queue', () => checkQueue(this.sqs, queueUrl, Math.max(5_000, deadline - Date.now())));
    this.heartbeats.start();
    // Consume before the resync returns: anything newer than the resync wins by version anyway.
    this.consumer = new QueueConsumer(
      this.sqs,
      queueUrl,
      (message) => this.onMessage(message),
      (error) => log(this.config.hostId, error.message),
      () => this.catchUp('its queue answers again'),
    );
    this.consumer.start();
    await progress.phase('fetching its forwarding table and VMs', () => this.retrying('resync', () => this.resync(), deadline));
    await progress.phase("fetching its VMs' secrets", () => this.refreshVmSecrets());
    this.resyncTimer = setInterval(() => {
      void this.resync().catch((error: Error) => log(this.config.hostId, `resync failed: ${error.message}`));
      // Changes to secrets and configs are pushed, and an arriving VM fetches its own: the period
      // only renews credentials well before they expire (bench:cost showed a refresh at every
      // resync to be most of what a fleet of agents costs).
      if (Date.now() - this.secretsRefreshedAt >= SECRETS_RENEWAL_MS) void this.refreshVmSecrets();
    }, this.config.resyncIntervalMs);
    this.resyncTimer.unref();
    this.startedInMs = progress.elapsedMs();
    return controlSocket;
  }

  /** What the host registers it runs VMs with: placement keeps off a host that says `none`. */
  private runsVmsWith(): Pick<RegisterHostRequest, 'vmRuntime' | 'accelerator' | 'liveMigration' | 'migrationCertificate'> {
    const runtime = this.config.vmRuntime?.runtime;
    if (!runtime) return {};
    return {
      vmRuntime: runtime.kind,
      ...(runtime.kind === 'qemu' && runtime.accelerator ? { accelerator: runtime.accelerator.kind } : {}),
      // Guests move live only between hosts whose agents run them in a host namespace (taps, routes, admission).
      ...(this.migrationIdentity ? { liveMigration: true, migrationCertificate: this.migrationIdentity.caCertificate } : {}),
    };
  }

  async stop(): Promise<void> {
    this.heartbeats.stop();
    clearInterval(this.resyncTimer);
    clearTimeout(this.secretsRetry);
    await this.consumer?.stop();
    this.migrations?.close();
    // Guests do not outlive the agent that runs them (a restarted agent boots them again).
    await this.lifecycle?.close();
    await this.vmReports.stop();
    await this.acks.stop();
    await this.dataPlane?.close();
    this.shuffle.stop();
    await this.bidRelay.close();
    if (this.shufflePeers.url) await this.shufflePeers.close();
    this.outboundPairs?.stopRenewing();
    await this.pairAdmissions?.close();
    await this.bridges.close();
    this.netnsSockets?.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    await this.pairKeys.close();
  }

  /** Merges the control plane's view of every network this host belongs to. */
  async resync(): Promise<void> {
    const { networks } = await this.controlPlane.forwardingTable(this.config.hostId);
    for (const network of networks) {
      this.applyAll([{ kind: 'endpoints', networkId: network.networkId, epoch: network.epoch, snapshot: true, entries: network.entries }]);
    }
    // The table is now the host's whole truth: tunnels an earlier agent left for networks the host has left can go.
    void this.dataPlane?.update(desiredState(this.table, this.config.hostId, this.migrations?.migrationRoutes()), true);
    this.acks.reaffirm(this.table.routes());
    if (this.stats.resyncs++ === 0) this.recheckPairs(new Set(this.table.localVms().map((vm) => vm.vmId)));
  }

  /** Pairs whose VM left this host, or that were revoked, go. */
  private recheckPairs(localIds: ReadonlySet<string>): void {
    void this.pairAdmissions?.recheck();
    void this.outboundPairs?.keepOnly(localIds);
  }

  /**
   * After a loss of contact, fetch the whole truth at once instead of waiting for the next period:
   * what was committed meanwhile may sit in a fan-out message that failed and comes back only after
   * its queue's visibility timeout.
   */
  private catchUp(why: string): void {
    if (this.stats.resyncs === 0) return; // still starting: the start-up resync is on its way
    log(this.config.hostId, `${why}: resyncing`);
    void this.resync().catch((error: Error) => log(this.config.hostId, `resync failed: ${error.message}`));
    void this.refreshVmSecrets();
  }

  private onMessage(message: Message): void {
    const parsed = HostMessageBatch.safeParse(safeJson(message.Body));
    if (!parsed.success) {
      this.stats.messagesRejected++;
      throw new Error(`rejected malformed message ${message.MessageId}: ${parsed.error.issues[0]?.message}`);
    }
    this.stats.messagesReceived++;
    this.applyAll(parsed.data.messages.filter((item): item is NetworkMessage => item.kind === 'endpoints' || item.kind === 'leave'));
    for (const item of parsed.data.messages) {
      if (item.kind === 'disk-deleted') {
        if (this.lifecycle) this.lifecycle.deleteDisk(item.poolId, item.diskId);
        else log(this.config.hostId, `disk ${item.diskId} deleted: this host runs no VMs, so it holds no disk files`);
      }
    }
    // A VM's credentials, or the networks allowed to open pairs to a network of this host's VMs, changed.
    if (parsed.data.messages.some((item) => item.kind === 'credentials-changed' || item.kind === 'allowed-sources-changed')) void this.refreshVmSecrets();
  }

  private applyAll(messages: NetworkMessage[]) {
    for (const message of messages) {
      const { applied, stale, changed } = this.table.apply(message);
      this.stats.entriesApplied += applied;
      this.stats.entriesStale += stale;
      for (const entry of changed) {
        if (entry.state !== 'active' || !entry.vmId) continue;
        this.acks.record(entry.vmId, entry.version);
        this.config.onEndpointApplied?.(entry.vmId, entry.version);
      }
    }
    void this.dataPlane?.update(desiredState(this.table, this.config.hostId, this.migrations?.migrationRoutes()));
    if (this.hostServices) this.egressAddresses.setUnderlayAddresses([this.config.address, ...this.table.routes().map((route) => route.endpoint)]);
    const local = this.table.localVms();
    const localIds = new Set(local.map((vm) => vm.vmId));
    for (const vmId of this.hostKeys.keys()) if (!localIds.has(vmId)) this.hostKeys.delete(vmId);
    this.tokens.keepOnly(localIds);
    this.pairKeys.keepOnly(localIds);
    // Until the start-up resync has every network, the local VMs are not all known yet: pairs wait for it.
    if (this.stats.resyncs > 0) this.recheckPairs(localIds);
    if (this.hostServices) void this.bridges.reconcile(local);
    this.lifecycle?.update(local, this.launches);
    const arrivals = [...localIds].filter((vmId) => !this.localVmIds.has(vmId));
    for (const vmId of arrivals) log(this.config.hostId, `vm ${vmId} placed here`);
    const arrived = arrivals.length > 0;
    const left = [...this.localVmIds].some((vmId) => !localIds.has(vmId));
    this.localVmIds = localIds;
    // A VM that arrived needs its credential and pair secret now, not at the next period; one that
    // left needs nothing fetched (its secrets were dropped above), only its shuffle inboxes closed.
    if (arrived && this.stats.resyncs > 0) void this.refreshVmSecrets();
    else if (left) void this.shuffle.keepOnly(localIds);
  }

  /**
   * Fetches what this host needs for the VMs it runs: their configurations (launch, egress
   * policies, attributes, wrapped pair secrets, shuffle jobs) and, while one has a service account,
   * credentials bound to the agent's minting key. Calls that arrive during a refresh make one more
   * refresh after it, so no change is missed.
   */
  refreshVmSecrets(): Promise<void> {
    if (this.secretsRefresh) {
      this.secretsRefresh.again = true;
      return this.secretsRefresh.running;
    }
    const state = { again: false, running: Promise.resolve() };
    state.running = (async () => {
      do {
        state.again = false;
        try {
          // A guest boots as soon as its configuration is here: its credentials (KMS behind them) come meanwhile.
          const pairKeysAskedAt = Date.now();
          const configsApplied = this.controlPlane.vmConfigs(this.config.hostId).then((configs) => {
            this.vmConfigs = new Map(configs.vms.map((config) => [config.vmId, config]));
            this.launches = new Map(configs.vms.map((config) => [config.vmId, config.launch]));
            this.lifecycle?.update(this.table.localVms(), this.launches);
            this.migrations?.update(configs.vms);
            this.egressAddresses.openPrivateRanges(configs.egressOpenCidrs);
            return configs;
          });
          // Credentials only for a host with a VM that has a service account: most hosts have none, and save the request.
          const credentialsFetched = configsApplied.then((configs) =>
            configs.vms.some((vm) => vm.serviceAccountId !== undefined) ? this.controlPlane.hostCredentials(this.config.hostId, this.tokens.publicJwk()) : [],
          );
          const [credentials, configs] = await Promise.all([credentialsFetched, configsApplied]);
          await this.shuffle.update(configs.shuffleJobs, this.localVmIds);
          this.tokens.replace(credentials);
          this.tokens.keepOnly(this.localVmIds);
          await this.pairKeys.replace(
            configs.pairKeys.filter(({ vmId }) => this.localVmIds.has(vmId)),
            pairKeysAskedAt,
          );
          // A pair revoked since it was admitted stops now (once the local VMs are all known).
          if (this.stats.resyncs > 0) await this.pairAdmissions?.recheck();
          this.stats.secretRefreshes++;
          this.secretsRefreshedAt = Date.now();
          this.secretsFailures = 0;
        } catch (error) {
          // What it was asked for (a start, a reboot, a new policy) must not wait for the next
          // renewal: tried again soon, backing off while the control plane is unwell.
          this.secretsFailures++;
          const delay = Math.min(30_000, 500 * 2 ** Math.min(this.secretsFailures, 6));
          log(this.config.hostId, `VM secrets refresh failed: ${(error as Error).message}; again in ${delay / 1000} s`);
          clearTimeout(this.secretsRetry);
          this.secretsRetry = setTimeout(() => void this.refreshVmSecrets(), delay);
          this.secretsRetry.unref();
        }
      } while (state.again);
      this.secretsRefresh = undefined;
    })();
    this.secretsRefresh = state;
    return state.running;
  }

  /**
   * Network pairs need the data plane: the pair tunnel, the listener where other hosts present
   * tokens for this host's VMs (its underlay address, PAIR_PORT), and the VMs' side that opens them.
   */
  private async openNetworkPairs(netns: string): Promise<void> {
    const pairs = await NetworkPairs.open(netns, this.config.address);
    const hostLog = (message: string) => log(this.config.hostId, message);
    const records = this.config.pairRecordsFile ? new PairRecords(this.config.pairRecordsFile, hostLog) : undefined;
    const changed = () => {
      try {
        records?.save({ admitted: this.pairAdmissions?.records() ?? [], opened: this.outboundPairs?.records() ?? [] });
      } catch (error) {
        hostLog(`network pairs: not recorded (${(error as Error).message}); after a restart they run until their tokens expire, unrenewed`);
      }
    };
    this.pairAdmissions = new PairAdmissions({
      verify: (token, destinationVmId) => this.pairKeys.verify(token, destinationVmId, this.config.address),
      refusal: (claims) => this.pairKeys.refusal(claims),
      closedToNewConnections: (claims, networkId) => this.pairKeys.closedToNewConnections(claims, networkId),
      localVm: (vmId) => this.table.localVms().find((vm) => vm.vmId === vmId),
      pairs,
      tellSourceMoved: async (sourceHost, notice) => {
        const answer = await postToPeer((address, port) => this.netnsSockets!.connect(address, port), sourceHost, '/v1/pairs/moved', notice);
        if (answer.status !== 202)
          hostLog(`network pair ${notice.sourceVmId} -> ${notice.destinationVmId}: host ${sourceHost} not told of the move (${answer.message})`);
      },
      destinationMoved: (notice, from) => this.outboundPairs?.destinationMoved(notice, from),
      changed,
      log: hostLog,
    });
    this.outboundPairs = new OutboundPairs({
      requestConnection: (sourceVmId, destinationVmId) => this.controlPlane.requestConnection(sourceVmId, destinationVmId),
      connect: (address, port) => this.netnsSockets!.connect(address, port),
      sameNetwork: (vm, ip) => this.table.routes().some((route) => route.networkId === vm.networkId && route.ip === ip),
      pairs,
      changed,
      log: hostLog,
    });
    // The agent before this one's pairs: still in the kernel, renewed and rechecked from now on.
    const before = records?.load();
    if (before && before.admitted.length + before.opened.length > 0) {
      this.pairAdmissions.restore(before.admitted);
      this.outboundPairs.restore(before.opened);
      hostLog(`network pairs: took over ${before.admitted.length} admitted and ${before.opened.length} opened from the agent before`);
    }
    await this.pairAdmissions.listen(await this.netnsSockets!.listen(this.config.address, PAIR_PORT));
  }

  private pairsOrRefuse(): OutboundPairs {
    if (!this.outboundPairs) throw new PairRefusal(409, 'this host carries no traffic between networks: its agent programs no data plane (--netns)');
    return this.outboundPairs;
  }

  dataPlaneStatus(): DataPlaneStatus {
    return (
      this.dataPlane?.status() ?? {
        mode: 'memory',
        reason: 'no host network namespace given (--netns): the forwarding table is kept in memory, no tunnels are programmed',
      }
    );
  }

  /** What the data plane asks before admitting a new flow to a local VM. */
  async verifyConnection(
    destinationVmId: string,
    token: string,
  ): Promise<{ accepted: true; sourceVmId: string; sourceIp: string } | { accepted: false; reason: string }> {
    try {
      const claims = await this.pairKeys.verify(token, destinationVmId, this.config.address);
      return { accepted: true, sourceVmId: claims.src, sourceIp: claims.srcIp };
    } catch (error) {
      return { accepted: false, reason: (error as Error).message };
    }
  }

  /** Forwards a VM's host keys, as a set, to the control plane; the control plane checks the VM runs here. */
  private async publishHostKey(vm: LocalVm, keyType: string, keyData: string): Promise<void> {
    // The same key again leaves the set as published and attested: no control-plane call, no KMS signature.
    if (this.hostKeys.get(vm.vmId)?.get(keyType) === keyData) return;
    const keys = new Map(this.hostKeys.get(vm.vmId)).set(keyType, keyData);
    try {
      await this.controlPlane.publishHostKeys(
        this.config.hostId,
        vm.vmId,
        [...keys].map(([type, data]) => `${type} ${data}`),
      );
    } catch (error) {
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) throw new MetadataError(error.status, error.detail);
      throw new MetadataError(502, 'the control plane could not be reached; retry');
    }
    this.hostKeys.set(vm.vmId, keys);
  }

  /** Tries until it works; with a deadline (start checks), only until then, and not again after a refusal for good. */
  private async retrying<T>(what: string, action: () => Promise<T>, deadline?: number): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await action();
      } catch (error) {
        const delay = Math.min(10_000, 200 * 2 ** attempt);
        const message = (error as Error).message;
        if (deadline !== undefined && refusedForGood(error))
          throw new AgentStartError(`cannot start: the API at ${this.config.apiUrl} refused to ${what} the host: ${message}`);
        if (deadline !== undefined && Date.now() >= deadline)
          throw new AgentStartError(
            `cannot start: could not ${what} with the API at ${this.config.apiUrl} within ${this.config.startChecks!.timeoutMs / 1000} s (${message}): is the control plane up?`,
          );
        const wait = deadline === undefined ? delay : Math.max(0, Math.min(delay, deadline - Date.now()));
        log(this.config.hostId, `${what} failed (${message}); retrying in ${wait} ms`);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** Status and control for the host's operators, on a unix socket only they can open. */
  /**
   * The bid relay, where the operator said (`--bid-relay-listen`), else on 127.0.0.1. With a host
   * namespace, an address other than loopback is the namespace's (the host's underlay address).
   */
  private async listenForBids(): Promise<void> {
    const listen = this.config.bidRelay?.listen ?? { address: '127.0.0.1', port: this.config.bidPort };
    const inNamespace = this.netnsSockets && !listen.address.startsWith('127.');
    await this.bidRelay.listen(listen, inNamespace ? await this.netnsSockets!.listen(listen.address, listen.port) : undefined);
    const tokens = this.config.bidRelay?.tokens;
    log(
      this.config.hostId,
      `bid relay: ${this.bidRelay.url}/openrtb2/auction; ${tokens?.file ? `exchange tokens from ${tokens.file} (${tokens.count})` : 'no exchange tokens (--bid-relay-tokens): every request is refused'}`,
    );
  }

  private async serveControl(): Promise<string> {
    this.server = http.createServer((request, response) => {
      const path = new URL(request.url ?? '/', 'http://agent').pathname;
      const reply = (status: number, body: unknown) => {
        response.writeHead(status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(body, null, 2));
      };
      if (request.method === 'POST' && path === '/connections/verify') {
        return void readSmallBody(request).then(async (text) => {
          const parsed = VerifyConnectionRequest.safeParse(safeJson(text));
          if (!parsed.success) return reply(400, { message: `body: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}` });
          const verdict = await this.verifyConnection(parsed.data.destinationVmId, parsed.data.token);
          reply(verdict.accepted ? 200 : 403, verdict);
        });
      }
      if (request.method !== 'GET') return reply(405, { message: 'only GET, and POST /connections/verify' });
      if (path === '/healthz') return reply(200, { ok: true });
      if (path === '/status') return reply(200, this.statusReport());
      // What QEMU enforces on a running VM's disks (query-block): limits and sizes as the guest gets them.
      const disks = /^\/vms\/([a-z0-9-]{1,63})\/disks$/.exec(path);
      if (disks) {
        const inspected = this.localVmIds.has(disks[1]!) ? this.lifecycle?.inspectDisks(disks[1]!) : undefined;
        if (!inspected) return reply(404, { message: `vm ${disks[1]} runs no guest with disks on this host` });
        return void inspected.then(
          (list) => reply(200, { vmId: disks[1], disks: list }),
          (error: Error) => reply(409, { message: error.message }),
        );
      }
      reply(404, { message: 'try /status, /healthz or /vms/<vmId>/disks' });
    });
    const socket = this.config.controlSocket;
    mkdirSync(path.dirname(socket), { recursive: true, mode: 0o700 });
    chmodSync(path.dirname(socket), 0o700);
    // A socket file left by an agent that died goes; one that answers belongs to a running agent.
    if (await answers(socket)) throw new Error(`another agent answers on ${socket}: stop it, or give this one another --control-socket`);
    rmSync(socket, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(socket, resolve);
    });
    chmodSync(socket, 0o600);
    return socket;
  }

  /** What `/status` on the control socket answers. */
  statusReport() {
    return {
      hostId: this.config.hostId,
      address: this.config.address,
      mode: this.dataPlaneStatus().mode,
      dataPlane: this.dataPlaneStatus(),
      vmIdentity: this.vmIdentity(),
      bidRelayUrl: this.bidRelay.url,
      bidRelay: { url: this.bidRelay.url, tokensFile: this.config.bidRelay?.tokens?.file ?? null, exchangeTokens: this.config.bidRelay?.tokens?.count ?? 0 },
      bids: this.bidRelay.stats,
      shuffle: this.shuffle.stats(),
      shuffleHeld: this.shuffle.heldSpills(),
      shufflePeerUrl: this.shufflePeers.url ?? null,
      networkPairs: { admitted: this.pairAdmissions?.list() ?? [], opened: this.outboundPairs?.list() ?? [] },
      stats: this.stats,
      // Receive errors and the last message's time: a queue that cannot be read shows here.
      queue: this.consumer ? this.consumer.status() : null,
      acks: { ...this.acks.stats, pending: this.acks.pendingCount },
      heartbeats: this.heartbeats.stats,
      vms: this.bridges.list(),
      vmRuntime: this.config.vmRuntime
        ? {
            kind: this.config.vmRuntime.runtime.kind,
            runtime: this.config.vmRuntime.runtime.describe(),
            guests: [...this.localVmIds].map((vmId) => ({
              ...(this.config.vmRuntime!.runtime.report(vmId) ?? { vmId, state: 'not started' }),
              disks: this.lifecycle!.diskStatus(vmId),
            })),
            reports: { ...this.vmReports.stats, pending: this.vmReports.pendingCount },
            migrations: this.migrations?.status() ?? [],
            images: this.config.vmRuntime.images?.stats ?? null,
          }
        : null,
      serviceAccounts: Object.fromEntries([...this.localVmIds].map((vmId) => [vmId, this.tokens.serviceAccountOf(vmId) ?? null])),
      tokensMinted: this.tokens.minted,
      routes: this.table.routes(),
      networks: this.table.toJSON(),
    };
  }

  /** How a VM's bridge knows which VM is calling. */
  private vmIdentity(): { by: 'port' | 'interface'; note: string } {
    if (this.bridgeRedirects)
      return {
        by: 'interface',
        note: "each VM's metadata server (169.254.169.254:80) and outbound proxy (169.254.169.254:3128) answer on the VM's own interface only; its bidder port is still on a 127.0.0.1 port",
      };
    return {
      by: 'port',
      note: "each VM bridge listens on its own 127.0.0.1 port and takes any caller there for that VM: for development only; any local process can reach any VM's bridge",
    };
  }
}

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(socket);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

function safeJson(text: string | undefined): unknown {
  try {
    return JSON.parse(text ?? '');
  } catch {
    return undefined;
  }
}
