import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { vmInterfaceName } from '#host-agent/data-plane/desired-state.ts';
import { NETWORKS_TABLE, PAIR_DEVICE } from '#host-agent/data-plane/network-isolation.ts';
import { VM_GATEWAY } from '#host-agent/data-plane/plan-commands.ts';
import { macOfVm } from '#host-agent/vm-runtime/vm-taps.ts';
import { projectRoot } from '../processes.ts';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args);

/**
 * Why this machine cannot run the data-plane lab, or undefined when it can: it needs to make
 * network namespaces, veth pairs and VXLAN devices (root, or CAP_NET_ADMIN and CAP_SYS_ADMIN),
 * and nftables.
 */
export async function labUnavailableReason(): Promise<string | undefined> {
  const probe = `sp-probe-${process.pid}`;
  // Agents with a host namespace serve VMs' metadata through nftables redirects there.
  if (
    !(await run('nft', ['--version']).then(
      () => true,
      () => false,
    ))
  )
    return 'nft is missing (Debian: apt-get install nftables)';
  try {
    await ip('netns', 'add', probe);
  } catch (error) {
    return `cannot create network namespaces (${((error as { stderr?: string }).stderr ?? (error as Error).message).trim()}): needs root or CAP_SYS_ADMIN and CAP_NET_ADMIN`;
  }
  try {
    await ip('-n', probe, 'link', 'add', 'vxprobe', 'type', 'vxlan', 'id', '1', 'dstport', '4789', 'nolearning');
    return undefined;
  } catch (error) {
    return `cannot create VXLAN devices (${((error as { stderr?: string }).stderr ?? (error as Error).message).trim()}): the kernel needs the vxlan module`;
  } finally {
    await ip('netns', 'del', probe).catch(() => {});
  }
}

export interface LabHost {
  netns: string;
  underlay: string;
}

export interface LabVm {
  vmId: string;
  ip: string;
  netns: string;
  host: LabHost;
}

/**
 * Simulated hosts and VMs on this machine, made of network namespaces: each host a namespace on
 * a shared underlay bridge with its own address, each VM a namespace plugged into its host by a
 * veth pair, as a VM runtime would plug a VM's tap. Moving a VM unplugs it from one host and
 * plugs it into another; its address goes with it.
 */
export class DataPlaneLab {
  readonly hosts: LabHost[] = [];
  private readonly vms = new Map<string, LabVm>();
  private readonly processes: ChildProcess[] = [];
  private readonly extraNamespaces: string[] = [];
  private readonly bridge: string;

  constructor(
    /** Short and unique on the machine: names of namespaces and root-namespace links start with it. */
    private readonly prefix: string,
    /** The underlay's first three octets, e.g. `172.31.254`. */
    private readonly underlayNet = '172.31.254',
  ) {
    if (!/^[a-z0-9]{1,8}$/.test(prefix)) throw new Error('a lab prefix is 1 to 8 lowercase letters or digits');
    this.bridge = `${prefix}ul`;
  }

  async addHosts(count: number): Promise<LabHost[]> {
    if (this.hosts.length === 0) {
      await ip('link', 'add', this.bridge, 'type', 'bridge');
      await ip('link', 'set', this.bridge, 'up');
    }
    const added: LabHost[] = [];
    for (let i = 0; i < count; i++) {
      const index = this.hosts.length + 1;
      const host = { netns: `${this.prefix}-h${index}`, underlay: `${this.underlayNet}.${10 + index}` };
      await ip('netns', 'add', host.netns);
      await ip('link', 'add', `${this.prefix}u${index}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns);
      await ip('link', 'set', `${this.prefix}u${index}`, 'master', this.bridge, 'up');
      await ip('-n', host.netns, 'addr', 'add', `${host.underlay}/24`, 'dev', 'eth0');
      await ip('-n', host.netns, 'link', 'set', 'eth0', 'up');
      await ip('-n', host.netns, 'link', 'set', 'lo', 'up');
      // A host forwards between its VMs and its tunnels; VM traffic arrives on interfaces the
      // reverse path filter would not expect it on.
      await run('ip', [
        'netns',
        'exec',
        host.netns,
        'sysctl',
        '-qw',
        'net.ipv4.ip_forward=1',
        'net.ipv4.conf.all.rp_filter=0',
        'net.ipv4.conf.default.rp_filter=0',
      ]);
      this.hosts.push(host);
      added.push(host);
    }
    return added;
  }

  /**
   * A namespace standing for the world outside the cloud, on the underlay bridge at `address`
   * (e.g. 203.0.113.10, TEST-NET-3: public as far as any check goes, yet only on this machine),
   * reachable from every host's namespace. Call after addHosts.
   */
  async addOutsideWorld(address: string): Promise<{ netns: string; address: string }> {
    const netns = `${this.prefix}-world`;
    const subnet = `${address.split('.').slice(0, 3).join('.')}.0/24`;
    await ip('netns', 'add', netns);
    this.extraNamespaces.push(netns);
    await ip('link', 'add', `${this.prefix}uw`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns);
    await ip('link', 'set', `${this.prefix}uw`, 'master', this.bridge, 'up');
    await ip('-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
    await ip('-n', netns, 'link', 'set', 'eth0', 'up');
    await ip('-n', netns, 'link', 'set', 'lo', 'up');
    await ip('-n', netns, 'route', 'add', `${this.underlayNet}.0/24`, 'dev', 'eth0');
    for (const host of this.hosts) await ip('-n', host.netns, 'route', 'add', subnet, 'dev', 'eth0');
    return { netns, address };
  }

  /** Starts a long-running process inside a namespace of the lab; stopped with the lab. */
  spawnIn(netns: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', netns, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.processes.push(child);
    return child;
  }

  /** Makes a VM's namespace with its address and plugs it into `host`. */
  async plugVm(vmId: string, vmIp: string, host: LabHost): Promise<LabVm> {
    const vm = { vmId, ip: vmIp, netns: `${this.prefix}-${vmId}`, host };
    await ip('netns', 'add', vm.netns);
    await ip('-n', vm.netns, 'link', 'set', 'lo', 'up');
    this.vms.set(vmId, vm);
    await this.plug(vm, host);
    return vm;
  }

  /** Unplugs a VM from its host and plugs it into another: the VM keeps its namespace, address and sockets. */
  async moveVm(vmId: string, to: LabHost): Promise<LabVm> {
    const vm = this.vms.get(vmId);
    if (!vm) throw new Error(`no VM ${vmId} in the lab`);
    await ip('-n', vm.host.netns, 'link', 'del', vmInterfaceName(vmId));
    vm.host = to;
    await this.plug(vm, to);
    return vm;
  }

  /** Starts the traffic probe in a VM (see traffic-probe.mjs); resolves once it is ready. */
  async startProbe(vm: LabVm, args: string[]): Promise<TrafficProbe> {
    const child = spawn('ip', ['netns', 'exec', vm.netns, process.execPath, path.join(projectRoot, 'local/data-plane/traffic-probe.mjs'), ...args], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.processes.push(child);
    const lines = readline.createInterface({ input: child.stdout! });
    const waiting: ((line: string) => void)[] = [];
    lines.on('line', (line) => waiting.shift()?.(line));
    const next = () => new Promise<string>((resolve) => waiting.push(resolve));
    const ready = await Promise.race([
      next(),
      new Promise<string>((_, reject) => setTimeout(() => reject(new Error(`the probe in ${vm.vmId} did not start within 10 s`)), 10_000)),
    ]);
    if (ready !== 'READY') throw new Error(`the probe in ${vm.vmId} said ${ready}`);
    return new TrafficProbe(child, next);
  }

  /**
   * What a host's data plane holds, for a failing test to print: the isolation table (sets and
   * counters), policy rules, every routing table but the kernel's local one, and the pair tunnel's
   * neighbour and forwarding entries.
   */
  async describe(host: LabHost): Promise<string> {
    const sections: [string, string[]][] = [
      ['nft', ['nft', 'list', 'table', 'inet', NETWORKS_TABLE]],
      ['rules', ['ip', 'rule']],
      ['routes', ['ip', 'route', 'show', 'table', 'all']],
      ['neighbours', ['ip', 'neigh', 'show', 'dev', PAIR_DEVICE]],
      ['fdb', ['bridge', 'fdb', 'show', 'dev', PAIR_DEVICE]],
    ];
    const outputs = await Promise.all(
      sections.map(async ([title, [command, ...args]]) => {
        const output = await run('ip', ['netns', 'exec', host.netns, command!, ...args]).then(
          ({ stdout }) => stdout,
          (error: { stderr?: string; message: string }) => error.stderr ?? error.message,
        );
        const lines = output.split('\n').filter((line) => line && !line.includes('table local'));
        return `--- ${host.netns} ${title}\n${lines.join('\n')}`;
      }),
    );
    return outputs.join('\n');
  }

  async destroy(): Promise<void> {
    for (const child of this.processes) child.kill();
    for (const vm of this.vms.values()) await ip('netns', 'del', vm.netns).catch(() => {});
    for (const host of this.hosts) await ip('netns', 'del', host.netns).catch(() => {});
    for (const netns of this.extraNamespaces) await ip('netns', 'del', netns).catch(() => {});
    await ip('link', 'del', this.bridge).catch(() => {});
  }

  private async plug(vm: LabVm, host: LabHost): Promise<void> {
    const hostSide = vmInterfaceName(vm.vmId);
    await ip('link', 'add', hostSide, 'netns', host.netns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', vm.netns);
    // The VM's own MAC, as QEMU gives a guest: the host's anti-spoofing lets only it through.
    await ip('-n', vm.netns, 'link', 'set', 'eth0', 'address', macOfVm(vm.vmId));
    await ip('-n', vm.netns, 'addr', 'add', `${vm.ip}/32`, 'dev', 'eth0');
    await ip('-n', vm.netns, 'link', 'set', 'eth0', 'up');
    // The host side answers for the gateway once its agent has set it up (see VM_GATEWAY).
    await ip('-n', vm.netns, 'route', 'add', VM_GATEWAY, 'dev', 'eth0');
    await ip('-n', vm.netns, 'route', 'add', 'default', 'via', VM_GATEWAY, 'dev', 'eth0');
  }
}

export interface ProbeReport {
  udp: { sent: number; received: number; longestGapMs: number; gapEndedAt: number };
  tcp: { sent: number; received: number; longestGapMs: number; gapEndedAt: number; connected: boolean; closed: boolean; error?: string };
}

export class TrafficProbe {
  constructor(
    private readonly child: ChildProcess,
    private readonly nextLine: () => Promise<string>,
  ) {}

  /** What the probe saw in its current window; `reset` starts a new window after reporting. */
  async report(reset = false): Promise<ProbeReport> {
    const line = this.nextLine();
    this.child.stdin!.write(reset ? 'reset\n' : 'report\n');
    return JSON.parse(await line) as ProbeReport;
  }
}
