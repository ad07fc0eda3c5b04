import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { batch } from './batch.ts';
import { AntiSpoofing, macOfInterface, type AllowedSource } from './anti-spoofing.ts';
import { NetworkIsolation } from './network-isolation.ts';
import { deviceOf, routingTableOf, vniOf, vniOfDevice, type DesiredState, type NetworkPlan } from './desired-state.ts';
import { macOf, networkRemoval, planCommands, RULE_PRIORITY } from './plan-commands.ts';

const run = promisify(execFile);

export interface DataPlaneStatus {
  mode: 'memory' | 'linux-vxlan';
  /** Why this mode. */
  reason: string;
  netns?: string;
  /** Networks programmed in the kernel, and whether the last programming fully succeeded. */
  networks?: number;
  lastError?: string;
  programmings?: number;
}

/**
 * Programs real VXLAN tunnels into a host's network namespace from the agent's desired state.
 * VXLAN because the kernel has it everywhere (GRE taps, Geneve and WireGuard modules are often
 * missing), it carries L2 per network id so overlapping tenant ranges stay apart, and its
 * forwarding database takes static entries: the control plane, not flooding, says where each
 * host is. Updates are applied one at a time, the latest desired state winning; a network whose
 * programming failed is programmed again, whole, on the next pass (every change is idempotent),
 * and a local VM whose interface is not plugged in yet is programmed once it is.
 * What an earlier agent programmed stays and keeps forwarding while the agent restarts: it is
 * adopted, and what is no longer needed is removed after the first full resync.
 */
export class LinuxDataPlane {
  private programmed: DesiredState = new Map();
  private desired: DesiredState | undefined;
  private running: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly devices = new Set<string>();
  /** Devices found at start, kept until a complete desired state says which are still needed. */
  private leftovers = new Set<string>();
  /**
   * The desired state waiting (`desired`) is the host's whole truth. It belongs to that state, not
   * to whatever is being programmed when it arrives: a partial state still being programmed (one
   * network of a resync) must not take every other network's device for a leftover.
   */
  private desiredComplete = false;
  /** The last redirect asked for (redirectNow): the next one starts once it is applied. */
  private redirects: Promise<unknown> = Promise.resolve();
  private lastError: string | undefined;
  private programmings = 0;

  private constructor(
    private readonly netns: string,
    private readonly underlay: string,
    private readonly log: (message: string) => void,
    private readonly antiSpoofing: AntiSpoofing,
    private readonly isolation: NetworkIsolation,
  ) {}

  /**
   * Checks the namespace can be programmed (rights, VXLAN support, nftables) and adopts what an
   * earlier agent left. Every VM interface may send only as its VM (anti-spoofing.ts), and gets
   * only its own network's traffic (network-isolation.ts).
   */
  static async open(netns: string, underlay: string, log: (message: string) => void): Promise<LinuxDataPlane> {
    const plane = new LinuxDataPlane(netns, underlay, log, await AntiSpoofing.open(netns), await NetworkIsolation.open(netns));
    const probe = 'spprobe0';
    try {
      await run('ip', ['-n', netns, 'link', 'add', probe, 'type', 'vxlan', 'id', '1', 'dstport', '4789', 'local', underlay, 'nolearning']);
      await run('ip', ['-n', netns, 'link', 'del', probe]);
    } catch (error) {
      throw new Error(`cannot program VXLAN in network namespace ${netns}: ${((error as { stderr?: string }).stderr ?? (error as Error).message).trim()}`);
    }
    for (const device of await plane.existingDevices()) {
      plane.devices.add(device);
      plane.leftovers.add(device);
    }
    return plane;
  }

  status(): DataPlaneStatus {
    return {
      mode: 'linux-vxlan',
      reason: `programming VXLAN tunnels in network namespace ${this.netns} (underlay ${this.underlay})`,
      netns: this.netns,
      networks: this.programmed.size,
      programmings: this.programmings,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /**
   * Brings the kernel to `desired`, after any programming under way. `complete`: the state is the
   * host's whole truth (after a full resync), so devices an earlier agent left and nothing needs go.
   */
  update(desired: DesiredState, complete = false): Promise<void> {
    this.desired = desired;
    // A later state comes from the same whole table: it is whole too.
    if (complete) this.desiredComplete = true;
    this.running ??= this.drain().finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * Readies the redirect of a local VM's address to another host (a live migration's source, before
   * the transfer): the tunnel to that host and the address's neighbour entry behind it, so that
   * redirectNow is one route change. Harmless while the route still goes to the VM's interface.
   */
  async stageRedirect(networkId: string, vmIp: string, endpoint: string): Promise<void> {
    const device = deviceOf(vniOf(networkId));
    const error =
      (await batch('bridge', this.netns, [`fdb replace ${macOf(endpoint)} dev ${device} dst ${endpoint} self permanent`])) ??
      (await batch('ip', this.netns, [`neigh replace ${vmIp} lladdr ${macOf(endpoint)} dev ${device} nud permanent`]));
    if (error) throw new Error(`redirect of ${vmIp} to ${endpoint} not staged: ${error}`);
  }

  /**
   * Sends a staged address into the tunnel at once (the guest paused for its last copy), or back to
   * the VM's interface `vmDevice` (the transfer failed after that): one route change, ahead of the
   * full programming that follows.
   */
  async redirectNow(networkId: string, vmIp: string, vmDevice?: string): Promise<void> {
    const vni = vniOf(networkId);
    const line = `route replace ${vmIp}/32 dev ${vmDevice ?? deviceOf(vni)} table ${routingTableOf(vni)}`;
    // In the order asked: each is its own `ip` process, and a later one started at once could land
    // first (a redirect back, after a transfer failed at STOP, overtaken by the redirect it undoes,
    // leaves the guest unreachable where it runs on).
    const applied = this.redirects.then(() => batch('ip', this.netns, [line]));
    this.redirects = applied.catch(() => undefined);
    const error = await applied;
    if (error) throw new Error(`redirect of ${vmIp}: ${error}`);
  }

  /** Resolves when everything asked so far is programmed (or failed and awaits a retry). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Stops programming; what is programmed stays, so VMs keep their traffic while no agent runs. */
  async close(): Promise<void> {
    clearTimeout(this.retryTimer);
    await this.settled();
    clearTimeout(this.retryTimer);
  }

  private async drain(): Promise<void> {
    while (this.desired) {
      const desired = this.desired;
      const complete = this.desiredComplete;
      this.desired = undefined;
      this.desiredComplete = false;
      await this.program(desired, complete);
    }
  }

  /** `complete`: `wanted` is the host's whole truth (see desiredComplete). */
  private async program(wanted: DesiredState, complete: boolean): Promise<void> {
    clearTimeout(this.retryTimer);
    // A VM's interface is plugged in as its guest boots, after the VM reached the table: until it
    // is there its lines could only fail, so it waits (no error) and is programmed once it is.
    const { desired, waiting } = withPluggedInterfaces(wanted, await this.interfaces());
    const plan = planCommands(this.programmed, desired);
    await batch('ip', this.netns, plan.ipPrepare);
    const failed = new Set<string>();
    for (const network of plan.newDevices) {
      if (this.devices.has(network.device)) continue;
      const error = await this.createDevice(network);
      if (error) {
        failed.add(network.networkId);
        this.fail(`network ${network.networkId}: ${error}`);
      }
    }
    const errors = [await batch('bridge', this.netns, plan.bridgeApply), await batch('ip', this.netns, plan.ipApply)].filter(Boolean);
    // Removals of what is already gone fail harmlessly.
    await batch('ip', this.netns, plan.ipRemove);
    await batch('bridge', this.netns, plan.bridgeRemove);
    await this.antiSpoofing.sync(allowedSources(desired), complete).catch((error: Error) => errors.push(`anti-spoofing: ${error.message}`));
    await this.isolation.sync(desired, complete).catch((error: Error) => errors.push(`network isolation: ${error.message}`));
    if (complete && this.leftovers.size > 0) {
      const needed = new Set([...desired.values()].map((network) => network.device));
      const unneeded = [...this.leftovers].filter((device) => !needed.has(device));
      await batch(
        'ip',
        this.netns,
        unneeded.flatMap((device) => networkRemoval(device, routingTableOf(vniOfDevice(device)))),
      );
      for (const device of unneeded) this.devices.delete(device);
      this.leftovers.clear();
    }
    for (const [networkId, before] of this.programmed) if (!desired.has(networkId)) this.devices.delete(before.device);
    this.programmings++;
    if (errors.length > 0) {
      // Which line failed is not worth parsing: every network is programmed again, whole, soon.
      this.fail(errors.join('; '));
      this.programmed = new Map([...desired].filter(([networkId]) => !failed.has(networkId)).map(([networkId, plan]) => [networkId, emptied(plan)]));
      this.scheduleRetry(wanted);
      return;
    }
    this.programmed = new Map([...desired].filter(([networkId]) => !failed.has(networkId)));
    if (failed.size > 0 || waiting) this.scheduleRetry(wanted);
    if (failed.size === 0) this.lastError = undefined;
  }

  private async createDevice(network: NetworkPlan): Promise<string | undefined> {
    const { device, vni, table } = network;
    const error = await batch('ip', this.netns, [
      `link add ${device} type vxlan id ${vni} dstport 4789 local ${this.underlay} nolearning`,
      `link set ${device} address ${macOf(this.underlay)} up`,
      `rule add pref ${RULE_PRIORITY} iif ${device} lookup ${table}`,
    ]);
    if (!error) this.devices.add(device);
    return error;
  }

  private fail(message: string): void {
    if (message !== this.lastError) this.log(`data plane: ${message}; will program again`);
    this.lastError = message;
  }

  /** Programs `desired` again soon; any newer programming cancels this (it retries its own state). */
  private scheduleRetry(desired: DesiredState): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.update(this.desired ?? desired), 250);
    this.retryTimer.unref();
  }

  /** Every interface in the namespace, by name. */
  private async interfaces(): Promise<Set<string>> {
    const { stdout } = await run('ip', ['-n', this.netns, '-o', 'link', 'show']);
    return new Set([...stdout.matchAll(/^\d+: ([^:@\s]+)[@:]/gm)].map((match) => match[1]!));
  }

  /** Our VXLAN devices in the namespace. */
  private async existingDevices(): Promise<string[]> {
    const { stdout } = await run('ip', ['-n', this.netns, '-o', 'link', 'show', 'type', 'vxlan']);
    return [...stdout.matchAll(/^\d+: (vx[0-9a-f]{6})[@:]/gm)].map((match) => match[1]!);
  }
}

/** `desired` without the local VMs whose interface is not in `present`; `waiting`: some were left out. */
export function withPluggedInterfaces(desired: DesiredState, present: ReadonlySet<string>): { desired: DesiredState; waiting: boolean } {
  let waiting = false;
  const ready: DesiredState = new Map();
  for (const [networkId, network] of desired) {
    const local = new Map([...network.local].filter(([, device]) => present.has(device)));
    if (local.size < network.local.size) waiting = true;
    ready.set(networkId, { ...network, local });
  }
  return { desired: ready, waiting };
}

/** What each local VM interface may send as: its VM's address, and the MAC its name gives. */
function allowedSources(desired: DesiredState): AllowedSource[] {
  return [...desired.values()].flatMap((network) => [...network.local].map(([ip, device]) => ({ device, ip, mac: macOfInterface(device) })));
}

/** A network whose device exists but whose entries must all be programmed again. */
function emptied(plan: NetworkPlan): NetworkPlan {
  return { ...plan, local: new Map(), remote: new Map() };
}
