import { rmSync } from 'node:fs';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { DataPlaneLab, labUnavailableReason, type LabVm } from '../local/data-plane/lab.ts';
import { startLocalStack, type AgentInfo } from '../local/local-stack.ts';
import { projectRoot } from '../local/processes.ts';
import { apiClient } from './api-client.ts';
import { retry } from './waiting.ts';

/**
 * Network-pair setup, end to end on real tunnels: sources VMs of network A on host 1, destinations
 * of network B (which allows A) on host 2, each destination running a TCP echo server. For each
 * pair (a source and a destination never paired before), inside the source VM: the time from its
 * metadata request (`POST …/network-pairs/<dst>`) to the answer (the agent got the token from the
 * control plane, the destination's agent admitted it, the route is in), and to the first line
 * echoed by the destination over a new connection: the first packet admitted. Beside them, the
 * control plane's part alone: the same mint asked directly of the API.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: { pairs: { type: 'string', default: '50' }, sources: { type: 'string', default: '5' } },
});
const pairs = Number(values.pairs);
const sources = Number(values.sources);
if (!(Number.isInteger(pairs) && pairs >= 1)) throw new Error('--pairs must be a whole number >= 1');
if (!(Number.isInteger(sources) && sources >= 1 && sources <= pairs)) throw new Error('--sources must be between 1 and --pairs');
const destinations = Math.ceil(pairs / sources);

const unavailable = await labUnavailableReason();
if (unavailable) {
  console.error(`bench:pairs needs real network namespaces: ${unavailable}`);
  process.exit(1);
}

const run = promisify(execFile);
const ECHO_PORT = 7300;
/** Run inside the source VM: its metadata request, then new connections until one echoes; both times, as JSON. */
const pairScript = (vm: LabVm, destination: LabVm) => `
const http = require('node:http'), net = require('node:net');
const started = performance.now();
const request = http.request({ host: '169.254.169.254', path: '/computeMetadata/v1/instance/network-pairs/${destination.vmId}', method: 'POST', localAddress: '${vm.ip}', headers: { 'Metadata-Flavor': 'Stratoplane' } }, (response) => {
  let body = ''; response.setEncoding('utf8'); response.on('data', (chunk) => (body += chunk));
  response.on('end', () => {
    const answered = performance.now();
    if (response.statusCode !== 200) { console.log(JSON.stringify({ error: response.statusCode + ' ' + body })); return; }
    const attempt = () => {
      const socket = net.connect({ host: '${destination.ip}', port: ${ECHO_PORT}, localAddress: '${vm.ip}' });
      socket.setEncoding('utf8');
      const retry = setTimeout(() => { socket.destroy(); attempt(); }, 200);
      socket.on('connect', () => socket.write('ping\\n'));
      socket.on('data', () => { clearTimeout(retry); console.log(JSON.stringify({ answerMs: answered - started, firstEchoMs: performance.now() - started })); socket.destroy(); });
      socket.on('error', () => {});
    };
    attempt();
  });
});
request.on('error', (error) => console.log(JSON.stringify({ error: error.message })));
request.end();
setTimeout(() => { console.log(JSON.stringify({ error: 'no echo within 20 s' })); process.exit(0); }, 20000).unref();
`;

const lab = new DataPlaneLab(`bp${process.pid % 100_000}`, '172.31.234');
const stateDir = path.join(projectRoot, '.local-run', `bench-pairs-${process.pid}`);
const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)]!;
try {
  const hosts = await lab.addHosts(2);
  console.error('starting the local control plane with 2 agents programming VXLAN in their host namespaces...');
  const stack = await startLocalStack({
    agentCount: 2,
    hostPrefix: `bp${process.pid}`,
    agentHosts: hosts.map(({ underlay, netns }) => ({ address: underlay, netns })),
    stateDir,
    log: (line) => /^\[local-aws\]|failed|error/i.test(line) && console.error(line),
  });
  try {
    const tenantId = 'bench-pairs';
    const tenant = await apiClient(stack, 'tenant', tenantId);
    const operator = await apiClient(stack, 'operator', 'bench');
    const [host1, host2] = stack.agents as [AgentInfo, AgentInfo];
    const a = await tenant.createNetwork({ body: { name: 'pairs-a', cidr: '10.205.0.0/24' } });
    const b = await tenant.createNetwork({ body: { name: 'pairs-b', cidr: '10.206.0.0/24' } });
    await tenant.allowSource({ params: { networkId: b.networkId, sourceNetworkId: a.networkId } });
    const plug = async (name: string, networkId: string, agent: AgentInfo, hostIndex: number) => {
      const vm = await operator.createVm({ body: { name, networkId, hostId: agent.hostId, tenantId } });
      return lab.plugVm(vm.vmId, vm.ip, hosts[hostIndex]!);
    };
    console.error(`${sources} source VMs on host 1, ${destinations} destination VMs on host 2...`);
    const from: LabVm[] = [];
    for (let i = 0; i < sources; i++) from.push(await plug(`source-${i}`, a.networkId, host1, 0));
    const to: LabVm[] = [];
    for (let i = 0; i < destinations; i++) {
      const vm = await plug(`destination-${i}`, b.networkId, host2, 1);
      await lab.startProbe(vm, ['echo', String(ECHO_PORT)]);
      to.push(vm);
    }
    // Each source's metadata server answers once its agent set its bridge up.
    for (const vm of from)
      await retry(async () => {
        const script = `require('node:http').get({host:'169.254.169.254',path:'/computeMetadata/v1/instance/id',localAddress:'${vm.ip}',headers:{'Metadata-Flavor':'Stratoplane'}},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1));`;
        await run('ip', ['netns', 'exec', vm.netns, process.execPath, '-e', script]);
      }, 30_000);

    const answers: number[] = [];
    const firstEchoes: number[] = [];
    const mints: number[] = [];
    for (let i = 0; i < pairs; i++) {
      const source = from[i % sources]!;
      const destination = to[Math.floor(i / sources)]!;
      const { stdout } = await run('ip', ['netns', 'exec', source.netns, process.execPath, '-e', pairScript(source, destination)], { timeout: 30_000 });
      const result = JSON.parse(stdout.trim()) as { answerMs?: number; firstEchoMs?: number; error?: string };
      if (result.error) throw new Error(`pair ${i + 1} (${source.vmId} -> ${destination.vmId}): ${result.error}`);
      answers.push(result.answerMs!);
      firstEchoes.push(result.firstEchoMs!);
      // The control plane's part alone, for comparison: the same kind of mint, asked of the API directly.
      const minted = performance.now();
      await tenant.requestConnection({ params: { vmId: source.vmId }, body: { destinationVmId: destination.vmId } });
      mints.push(performance.now() - minted);
      console.error(
        `pair ${i + 1}: metadata request -> answer ${result.answerMs!.toFixed(0)} ms, -> first echo ${result.firstEchoMs!.toFixed(0)} ms (a mint alone: ${mints.at(-1)!.toFixed(0)} ms)`,
      );
    }
    const row = (label: string, values: number[]) =>
      console.log(
        `  ${label.padEnd(60)} median ${quantile(values, 0.5).toFixed(0).padStart(5)} ms   p99 ${quantile(values, 0.99).toFixed(0).padStart(5)} ms   worst ${Math.max(
          ...values,
        )
          .toFixed(0)
          .padStart(5)} ms`,
      );
    console.log(`bench:pairs  pairs=${pairs} (${sources} sources x ${destinations} destinations, each pair new)  hosts=2 (network namespaces, VXLAN)`);
    row('metadata request -> first packet admitted (first echo)', firstEchoes);
    row('metadata request -> its answer (token, admission, route)', answers);
    row("the control plane's mint alone (POST /vms/{id}/connections)", mints);
    console.log(
      "  the rest of the setup is the agents': the destination's check (HMAC, the used-token record's fsync), nftables and ip runs on both hosts, and the underlay round trip",
    );
    console.log(`pair_setup_ms median=${quantile(firstEchoes, 0.5).toFixed(0)} p99=${quantile(firstEchoes, 0.99).toFixed(0)}`);
  } finally {
    await stack.stop();
  }
} finally {
  await lab.destroy();
  rmSync(stateDir, { recursive: true, force: true });
}
