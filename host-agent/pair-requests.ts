import { ApiError } from '#events/api-client.ts';
import { routingTableOf, vniOf } from './data-plane/desired-state.ts';
import { type NetworkPairs, PairConflict, type PairEnd } from './data-plane/network-pairs.ts';
import { PAIR_TOKEN_SECONDS } from '#tokens/pair-tokens.ts';
import type { LocalVm } from './forwarding-table.ts';
import type { OpenedRecord } from './pair-records.ts';
import { type Dial, postToPeer } from './pair-peers.ts';
import { PairRefusal } from './pair-refusal.ts';

/** What the control plane answers for a pair (POST /vms/{vmId}/connections, asked as this host). */
export interface Connection {
  destinationVmId: string;
  destinationIp: string;
  destinationHostAddress: string;
  token: string;
  expiresAt: string;
}

export interface OutboundPairsDeps {
  requestConnection(sourceVmId: string, destinationVmId: string): Promise<Connection>;
  /** A TCP connection to another host's pair listener, from this host's underlay. */
  connect: Dial;
  /** Whether `ip` is a VM of `vm`'s own network (reached through the network's tunnel, no pair needed). */
  sameNetwork(vm: LocalVm, ip: string): boolean;
  pairs: NetworkPairs;
  /** Called after every change to what is open (to keep the record of it). */
  changed(): void;
  log(message: string): void;
}

/** What a VM's metadata server answers for a pair it opened. */
export interface PairView {
  destinationVmId: string;
  destinationIp: string;
  /** `pair`: routed to the destination's host as a network pair; `network`: the same network, nothing to open. */
  via: 'pair' | 'network';
  until?: string;
}

interface Routed {
  vm: LocalVm;
  destinationVmId: string;
  end: PairEnd;
  expiresAt: number;
  renewal: NodeJS.Timeout;
  /** When its destination's host said the VM left (renewals then retry for MOVE_FOLLOW_MS). */
  movedAt?: number;
}

/** A pair is renewed when this share of its token's lifetime is gone, so renewals outrun expiry. */
const RENEW_AT = 0.6;
/** After a renewal that could not reach the control plane or the destination: tried again this soon, until the token expires. */
const RETRY_MS = 1_000;
/** After the destination moved: how long renewals keep trying while its new host is not ready for it yet (its pair secret on the way). */
const MOVE_FOLLOW_MS = 60_000;

/**
 * The source's half of a network pair, asked by the VM through its metadata server: the agent asks
 * the control plane (as this host) for the pair's token, which only the destination's host can
 * check, presents it to that host's agent over the underlay (PairAdmissions), and once admitted
 * routes the VM's traffic for the destination's address through the pair tunnel to that host.
 * The VM never sees the token. Kept open while the VM runs here: renewed before the token expires
 * with a new token (which also follows a destination that moved); a renewal the control plane
 * refuses (the pair revoked, the source no longer allowed) closes the pair, and so does the token
 * running out while renewals fail.
 */
export class OutboundPairs {
  private readonly routed = new Map<string, Routed>();

  constructor(private readonly deps: OutboundPairsDeps) {}

  async open(vm: LocalVm, destinationVmId: string): Promise<PairView> {
    const key = `${vm.vmId}>${destinationVmId}`;
    let connection: Connection;
    try {
      connection = await this.deps.requestConnection(vm.vmId, destinationVmId);
    } catch (error) {
      if (error instanceof ApiError && error.status < 500) throw new PairRefusal(error.status, error.detail, 'control plane');
      // The VM is told to retry; why is for the operator.
      this.deps.log(`network pair ${key}: the control plane could not be asked: ${(error as Error).message}`);
      throw new PairRefusal(502, 'the control plane could not be reached; retry');
    }
    if (this.deps.sameNetwork(vm, connection.destinationIp)) return { destinationVmId, destinationIp: connection.destinationIp, via: 'network' };
    const answer = await postToPeer(this.deps.connect, connection.destinationHostAddress, '/v1/pairs', {
      destinationVmId: connection.destinationVmId,
      token: connection.token,
    });
    if (answer.status >= 500) this.deps.log(`network pair ${key}: host ${connection.destinationHostAddress} did not admit it: ${answer.message}`);
    if (answer.status !== 200)
      throw new PairRefusal(
        answer.status >= 500 ? 502 : answer.status === 404 ? 409 : answer.status,
        `the destination's host refused the pair: ${answer.message}`,
      );
    const end: PairEnd = {
      localIp: vm.ip,
      table: routingTableOf(vniOf(vm.networkId)),
      remoteIp: connection.destinationIp,
      remoteHost: connection.destinationHostAddress,
    };
    const before = this.routed.get(key);
    if (before) clearTimeout(before.renewal);
    // The destination moved (or took another address): the old route goes first.
    if (before && (before.end.remoteHost !== end.remoteHost || before.end.remoteIp !== end.remoteIp)) await this.deps.pairs.withdrawRoute(before.end);
    const expiresAt = Date.parse(connection.expiresAt);
    try {
      await this.deps.pairs.route(end, (expiresAt - Date.now()) / 1000);
    } catch (error) {
      this.routed.delete(key);
      if (error instanceof PairConflict) throw new PairRefusal(409, error.message);
      throw error;
    }
    const renewal = setTimeout(() => void this.renew(key), Math.max(1_000, (expiresAt - Date.now()) * RENEW_AT));
    renewal.unref();
    this.routed.set(key, { vm, destinationVmId, end, expiresAt, renewal });
    this.deps.changed();
    if (!before || before.end.remoteHost !== end.remoteHost)
      this.deps.log(`network pair ${vm.vmId} (${vm.ip}) -> ${destinationVmId} (${end.remoteIp}) routed to host ${end.remoteHost}`);
    return { destinationVmId, destinationIp: end.remoteIp, via: 'pair', until: connection.expiresAt };
  }

  /**
   * The host the pair goes to says its destination left (`from`: the sender's address, which must be
   * that host): renewed now, so the pair follows the VM to its new host. Anyone else is ignored.
   */
  destinationMoved(notice: { sourceVmId: string; destinationVmId: string }, from: string): void {
    const key = `${notice.sourceVmId}>${notice.destinationVmId}`;
    const routed = this.routed.get(key);
    if (!routed || routed.end.remoteHost !== from) return;
    clearTimeout(routed.renewal);
    routed.movedAt = Date.now();
    void this.renew(key);
  }

  /** The VM closes its pair. */
  async close(vm: LocalVm, destinationVmId: string): Promise<void> {
    const key = `${vm.vmId}>${destinationVmId}`;
    if (!this.routed.has(key)) throw new PairRefusal(404, `no pair to vm ${destinationVmId} is open`);
    await this.withdraw(key, 'closed by its VM');
  }

  /** Closes the pairs of VMs that no longer run here. */
  async keepOnly(vmIds: ReadonlySet<string>): Promise<void> {
    for (const [key, routed] of this.routed) if (!vmIds.has(routed.vm.vmId)) await this.withdraw(key, `vm ${routed.vm.vmId} left this host`);
  }

  list(): { sourceVmId: string; destinationVmId: string; destinationIp: string; destinationHost: string; until: string }[] {
    return [...this.routed.values()].map(({ vm, destinationVmId, end, expiresAt }) => ({
      sourceVmId: vm.vmId,
      destinationVmId,
      destinationIp: end.remoteIp,
      destinationHost: end.remoteHost,
      until: new Date(expiresAt).toISOString(),
    }));
  }

  /** What is open, for the record that outlives the agent. */
  records(): OpenedRecord[] {
    return [...this.routed.values()].map(({ vm, destinationVmId, end, expiresAt }) => ({ vm, destinationVmId, end, expiresAt }));
  }

  /** Takes over what the agent before this one opened (still in the kernel): renewed on its schedule, or at once if that is past. */
  restore(records: readonly OpenedRecord[]): void {
    for (const { vm, destinationVmId, end, expiresAt } of records) {
      const key = `${vm.vmId}>${destinationVmId}`;
      this.deps.pairs.adopt(end, false);
      const lifetime = PAIR_TOKEN_SECONDS * 1000;
      const renewAt = expiresAt - lifetime + lifetime * RENEW_AT;
      const renewal = setTimeout(() => void this.renew(key), Math.max(0, renewAt - Date.now()));
      renewal.unref();
      this.routed.set(key, { vm, destinationVmId, end, expiresAt, renewal });
    }
  }

  /** Stops renewing; the routes stay until their timeouts, so flows survive an agent restart. */
  stopRenewing(): void {
    for (const routed of this.routed.values()) clearTimeout(routed.renewal);
  }

  private async renew(key: string): Promise<void> {
    const routed = this.routed.get(key);
    if (!routed) return;
    try {
      await this.open(routed.vm, routed.destinationVmId);
    } catch (error) {
      // The control plane says no (revoked, no longer allowed, gone): closed. Anything else is retried while the pair may still be good.
      const refused = error instanceof PairRefusal && error.by === 'control plane';
      const deadline = Math.max(routed.expiresAt, (routed.movedAt ?? 0) + MOVE_FOLLOW_MS);
      if (refused || Date.now() + RETRY_MS >= deadline) return this.withdraw(key, `not renewed: ${(error as Error).message}`);
      this.deps.log(`network pair ${key}: renewal failed (${(error as Error).message}); again in ${RETRY_MS / 1000} s`);
      routed.renewal = setTimeout(() => void this.renew(key), RETRY_MS);
      routed.renewal.unref();
    }
  }

  private async withdraw(key: string, why: string): Promise<void> {
    const routed = this.routed.get(key);
    if (!routed) return;
    this.routed.delete(key);
    clearTimeout(routed.renewal);
    this.deps.changed();
    await this.deps.pairs.withdrawRoute(routed.end).catch((error: Error) => this.deps.log(`network pair ${key}: ${error.message}`));
    this.deps.log(`network pair ${routed.vm.vmId} -> ${routed.destinationVmId} closed: ${why}`);
  }
}
