import { batch } from './batch.ts';
import { NETWORKS_TABLE, PAIR_DEVICE } from './network-isolation.ts';
import { nft } from './nft.ts';
import { macOf, RULE_PRIORITY } from './plan-commands.ts';

/** The pair tunnel's VXLAN id: reserved, no network draws it (desired-state.ts). */
export const PAIR_VNI = 0xffffff;

/** A pair this host cannot carry beside another: two local VMs of different networks with one address. */
export class PairConflict extends Error {}

/** One end of a network pair on this host: the local VM's side, the remote VM's address and host. */
export interface PairEnd {
  /** The local VM's address and its network's routing table. */
  localIp: string;
  table: number;
  /** The other VM's address, and the underlay address of the host that runs it. */
  remoteIp: string;
  remoteHost: string;
}

/**
 * Traffic between networks, one admitted pair at a time, in a host's namespace. Each network has
 * its own tunnel and routing table, and two networks' addresses are never routed to each other; a
 * pair (source VM → destination VM of another network, authorised by a pair token) is carried by
 * one more tunnel, `vxpairs` (VNI PAIR_VNI), shared by all pairs: the local VM's table routes the
 * remote VM's address through it to the remote host (`via <host> onlink`, so one neighbour entry per
 * host however many pairs go there), and a rule sends what arrives on it for the local VM to that
 * VM's table. What may pass is nftables' business (network-isolation.ts): `admit` puts the pair in
 * `admitted_pairs` and `live_pairs` (this host runs the destination: new connections, open ones),
 * `route` in `routed_pairs` (this host runs the source), each with the token's remaining lifetime as its timeout, so a pair not renewed stops by
 * itself even if its agent is gone.
 */
export class NetworkPairs {
  /** Which pairs use each rule (by local VM address) and each route (by table and remote address): the last one out removes it. */
  private readonly ruleUsers = new Map<string, Set<string>>();
  private readonly routeUsers = new Map<string, Set<string>>();
  /** Hosts whose tunnel entries (forwarding and neighbour) are made. */
  private readonly hosts = new Set<string>();
  /** The routing table each local address's rule leads to. */
  private readonly ruleTables = new Map<string, number>();

  private constructor(private readonly netns: string) {}

  /** Makes the pair tunnel if missing (kept if an earlier agent made it: its pairs keep flowing). */
  static async open(netns: string, underlay: string): Promise<NetworkPairs> {
    const pairs = new NetworkPairs(netns);
    const exists = (await batch('ip', netns, [`link show ${PAIR_DEVICE}`])) === undefined;
    if (!exists) {
      const error = await batch('ip', netns, [
        `link add ${PAIR_DEVICE} type vxlan id ${PAIR_VNI} dstport 4789 local ${underlay} nolearning`,
        `link set ${PAIR_DEVICE} address ${macOf(underlay)} up`,
      ]);
      if (error) throw new Error(`cannot make the network-pair tunnel in ${netns}: ${error}`);
    }
    return pairs;
  }

  /** This host runs the destination: `remoteIp → localIp` may open connections, and keep them, for `seconds`. */
  async admit(end: PairEnd, seconds: number): Promise<void> {
    await this.open(end, ADMISSION, seconds);
  }

  /** This host runs the source: `localIp → remoteIp` is routed to the destination's host for `seconds`. */
  async route(end: PairEnd, seconds: number): Promise<void> {
    await this.open(end, ROUTE, seconds);
  }

  /**
   * Takes over a pair an earlier agent programmed (its record survived the restart): what it uses is
   * counted, nothing is programmed again. `admission`: this host runs its destination.
   */
  adopt(end: PairEnd, admission: boolean): void {
    this.count(end, admission ? ADMISSION : ROUTE);
  }

  /** Stops a pair admitted here at once, new connections and open ones alike. */
  async withdrawAdmission(end: PairEnd): Promise<void> {
    await this.close(end, ADMISSION);
  }

  /** A pair admitted here opens no new connection from now on; open ones last until its timeout. */
  async closeToNewConnections(end: PairEnd): Promise<void> {
    await nft(this.netns, `delete element inet ${NETWORKS_TABLE} admitted_pairs { ${ADMISSION.element(end)} }\n`, 'network pairs').catch(() => {});
  }

  async withdrawRoute(end: PairEnd): Promise<void> {
    await this.close(end, ROUTE);
  }

  private async open(end: PairEnd, kind: PairKind, seconds: number): Promise<void> {
    const element = kind.element(end);
    const table = this.ruleTables.get(end.localIp);
    if (table !== undefined && table !== end.table)
      throw new PairConflict(`another network's VM on this host has address ${end.localIp} and a pair already: what arrives for it could not be told apart`);
    // A host's tunnel entries follow from its address alone: made once per host.
    const known = this.hosts.has(end.remoteHost);
    const error =
      (known
        ? undefined
        : await batch('bridge', this.netns, [`fdb replace ${macOf(end.remoteHost)} dev ${PAIR_DEVICE} dst ${end.remoteHost} self permanent`])) ??
      (await batch('ip', this.netns, [
        ...(known ? [] : [`neigh replace ${end.remoteHost} lladdr ${macOf(end.remoteHost)} dev ${PAIR_DEVICE} nud permanent`]),
        `route replace ${end.remoteIp}/32 via ${end.remoteHost} dev ${PAIR_DEVICE} onlink table ${end.table}`,
      ]));
    if (error) throw new Error(`pair ${element} not routed: ${error}`);
    this.hosts.add(end.remoteHost);
    if (!this.ruleUsers.has(end.localIp)) {
      // Deleted first: an earlier agent's rule for the address, or none; added once.
      await batch('ip', this.netns, [ruleLine('del', end)]);
      const failed = await batch('ip', this.netns, [ruleLine('add', end)]);
      if (failed) throw new Error(`pair ${element}: no rule for ${end.localIp} on ${PAIR_DEVICE}: ${failed}`);
    }
    this.count(end, kind);
    // Added, deleted and added again in one transaction: a renewal's new timeout replaces the old one.
    const timeout = Math.max(1, Math.floor(seconds));
    await nft(
      this.netns,
      kind.sets
        .map(
          (name) => `add element inet ${NETWORKS_TABLE} ${name} { ${element} timeout ${timeout}s }
delete element inet ${NETWORKS_TABLE} ${name} { ${element} }
add element inet ${NETWORKS_TABLE} ${name} { ${element} timeout ${timeout}s }
`,
        )
        .join(''),
      'network pairs',
    );
  }

  /** Counts the pair among the users of its rule and its route. */
  private count(end: PairEnd, kind: PairKind): void {
    use(this.ruleUsers, end.localIp, userOf(end, kind));
    use(this.routeUsers, `${end.table} ${end.remoteIp}`, userOf(end, kind));
    this.ruleTables.set(end.localIp, end.table);
  }

  private async close(end: PairEnd, kind: PairKind): Promise<void> {
    const element = kind.element(end);
    // An element that already timed out (or was closed to new connections) is no error: one set at a time.
    for (const name of kind.sets) await nft(this.netns, `delete element inet ${NETWORKS_TABLE} ${name} { ${element} }\n`, 'network pairs').catch(() => {});
    if (release(this.routeUsers, `${end.table} ${end.remoteIp}`, userOf(end, kind)))
      await batch('ip', this.netns, [`route del ${end.remoteIp}/32 table ${end.table}`]);
    if (release(this.ruleUsers, end.localIp, userOf(end, kind))) {
      this.ruleTables.delete(end.localIp);
      await batch('ip', this.netns, [ruleLine('del', end)]);
    }
  }
}

/** Where a pair goes in nftables, and its element there (source . destination): admitted here, or routed from here. */
interface PairKind {
  sets: ('admitted_pairs' | 'live_pairs' | 'routed_pairs')[];
  element(end: PairEnd): string;
}
const ADMISSION: PairKind = { sets: ['admitted_pairs', 'live_pairs'], element: (end) => `${end.remoteIp} . ${end.localIp}` };
const ROUTE: PairKind = { sets: ['routed_pairs'], element: (end) => `${end.localIp} . ${end.remoteIp}` };
const userOf = (end: PairEnd, kind: PairKind) => `${kind.sets[0]} ${kind.element(end)}`;

const use = (users: Map<string, Set<string>>, key: string, user: string) => users.set(key, (users.get(key) ?? new Set()).add(user));
/** Whether `user` was the last one of `key`. */
function release(users: Map<string, Set<string>>, key: string, user: string): boolean {
  const set = users.get(key);
  if (!set?.delete(user)) return false;
  if (set.size > 0) return false;
  users.delete(key);
  return true;
}

const ruleLine = (action: 'add' | 'del', end: PairEnd) => `rule ${action} pref ${RULE_PRIORITY} iif ${PAIR_DEVICE} to ${end.localIp}/32 lookup ${end.table}`;
