import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where a VM finds its metadata server, as on GCE and EC2. */
export const METADATA_ADDRESS = '169.254.169.254';
/** Priority of the rules that route a metadata server's answers back into its VM's network. */
export const METADATA_RULE_PRIORITY = 9_000;
const TABLE = 'stratoplane_metadata';

/**
 * Gives each VM its own metadata server at 169.254.169.254:80, chosen by the interface its
 * packets come in on, never by anything the VM sends: in the host's namespace, a connection from
 * a VM's interface to 169.254.169.254:80 is redirected (DNAT, keyed by interface name) to the
 * port where that VM's server listens on 169.254.169.254; any other connection to that address
 * (a VM naming another's port, another host over the underlay) is dropped. Answers go back by a
 * rule per server port to the VM's network's routing table, where overlapping tenant ranges stay
 * apart.
 */
export class MetadataRedirects {
  private constructor(private readonly netns: string) {}

  /** Sets the namespace up (address, nftables table), replacing whatever an earlier agent left. */
  static async open(netns: string): Promise<MetadataRedirects> {
    const redirects = new MetadataRedirects(netns);
    await run('ip', ['-n', netns, 'addr', 'replace', `${METADATA_ADDRESS}/32`, 'dev', 'lo']);
    // An earlier agent's servers are gone with it: its redirects and rules go too.
    await redirects.nft(`table ip ${TABLE} {}
delete table ip ${TABLE}
table ip ${TABLE} {
  map ports { type ifname : inet_service; }
  chain prerouting {
    type nat hook prerouting priority dstnat;
    ip daddr ${METADATA_ADDRESS} tcp dport 80 dnat ip to ${METADATA_ADDRESS} : iifname map @ports
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

  /** Sends `device`'s metadata connections to `port`, and the answers back through `routingTable`. */
  async add(device: string, port: number, routingTable: number): Promise<void> {
    await this.nft(`add element ip ${TABLE} ports { "${device}" : ${port} }\n`);
    await run('ip', [
      '-n',
      this.netns,
      'rule',
      'add',
      'pref',
      String(METADATA_RULE_PRIORITY),
      'ipproto',
      'tcp',
      'sport',
      String(port),
      'lookup',
      String(routingTable),
    ]);
  }

  async remove(device: string, port: number, routingTable: number): Promise<void> {
    await this.nft(`delete element ip ${TABLE} ports { "${device}" }\n`).catch(() => {});
    await run('ip', [
      '-n',
      this.netns,
      'rule',
      'del',
      'pref',
      String(METADATA_RULE_PRIORITY),
      'ipproto',
      'tcp',
      'sport',
      String(port),
      'lookup',
      String(routingTable),
    ]).catch(() => {});
  }

  private nft(script: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', this.netns, 'nft', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('error', (error) => reject(new Error(`nft: ${error.message} (nftables is needed for VMs' metadata servers with --netns)`)));
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`nft in ${this.netns}: ${stderr.trim() || `exit ${code}`}`))));
      child.stdin.end(script);
    });
  }
}
