import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { nft } from './nft.ts';

const run = promisify(execFile);

/** Where a VM finds its metadata server (port 80) and its outbound proxy (port 3128), as on GCE and EC2. */
export const METADATA_ADDRESS = '169.254.169.254';
/** The outbound proxy's port at METADATA_ADDRESS (Squid's, which proxy-aware tools expect). */
export const EGRESS_PROXY_PORT = 3128;
/** Where a bidder inside a VM connects to the host's bid relay (SBRP), at METADATA_ADDRESS: the same on every host, so a bidder whose VM moved reconnects to the same address and reaches its new host. */
export const BIDDER_PORT = 7070;
/** Priority of the rules that route a bridge's answers back into its VM's network. */
export const METADATA_RULE_PRIORITY = 9_000;
const TABLE = 'stratoplane_metadata';

/** The services of a VM's bridge reached at METADATA_ADDRESS, by the port the VM connects to. */
export type BridgeService = 'metadata' | 'egress' | 'bidder';
const SERVICE_PORTS: Record<BridgeService, number> = { metadata: 80, egress: EGRESS_PROXY_PORT, bidder: BIDDER_PORT };

/**
 * Gives each VM its own metadata server at 169.254.169.254:80, its own outbound proxy at
 * 169.254.169.254:3128 and its own bidder port at 169.254.169.254:7070, chosen by the interface its packets come in on, never by anything the VM
 * sends: in the host's namespace, a connection from a VM's interface to one of those is redirected
 * (DNAT, keyed by interface name) to the port where that VM's server listens on 169.254.169.254;
 * any other connection to that address (a VM naming another's port, another host over the
 * underlay) is dropped. Answers go back by a rule per server port to the VM's network's routing
 * table, where overlapping tenant ranges stay apart.
 */
export class BridgeRedirects {
  private constructor(private readonly netns: string) {}

  /** Sets the namespace up (address, nftables table), replacing whatever an earlier agent left. */
  static async open(netns: string): Promise<BridgeRedirects> {
    const redirects = new BridgeRedirects(netns);
    await run('ip', ['-n', netns, 'addr', 'replace', `${METADATA_ADDRESS}/32`, 'dev', 'lo']);
    // An earlier agent's servers are gone with it: its redirects and rules go too.
    await redirects.nft(`table ip ${TABLE} {}
delete table ip ${TABLE}
table ip ${TABLE} {
${Object.keys(SERVICE_PORTS)
  .map((service) => `  map ${service}_ports { type ifname : inet_service; }`)
  .join('\n')}
  chain prerouting {
    type nat hook prerouting priority dstnat;
${Object.entries(SERVICE_PORTS)
  .map(([service, port]) => `    ip daddr ${METADATA_ADDRESS} tcp dport ${port} dnat ip to ${METADATA_ADDRESS} : iifname map @${service}_ports`)
  .join('\n')}
  }
  chain input {
    type filter hook input priority filter;
    ip daddr ${METADATA_ADDRESS} ct status dnat accept
    ip daddr ${METADATA_ADDRESS} drop
  }
}
`);
    for (let i = 0; i < 10_000; i++) {
      if (
        !(await run('ip', ['-n', netns, 'rule', 'del', 'pref', String(METADATA_RULE_PRIORITY)]).then(
          () => true,
          () => false,
        ))
      )
        break;
    }
    return redirects;
  }

  /** Sends `device`'s connections to `service` to `port`, and the answers back through `routingTable`. */
  async add(service: BridgeService, device: string, port: number, routingTable: number): Promise<void> {
    await this.nft(`add element ip ${TABLE} ${service}_ports { "${device}" : ${port} }\n`);
    await run('ip', ['-n', this.netns, ...answerRule('add', port, routingTable)]);
  }

  async remove(service: BridgeService, device: string, port: number, routingTable: number): Promise<void> {
    await this.nft(`delete element ip ${TABLE} ${service}_ports { "${device}" }\n`).catch(() => {});
    await run('ip', ['-n', this.netns, ...answerRule('del', port, routingTable)]).catch(() => {});
  }

  private nft(script: string): Promise<void> {
    return nft(this.netns, script, "VMs' metadata servers and outbound proxies");
  }
}

const answerRule = (action: 'add' | 'del', port: number, routingTable: number) => [
  'rule',
  action,
  'pref',
  String(METADATA_RULE_PRIORITY),
  'ipproto',
  'tcp',
  'sport',
  String(port),
  'lookup',
  String(routingTable),
];
