import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { deprioritize } from './cpu-priority.ts';
import { vmInterfaceName } from '../host-agent/data-plane/desired-state.ts';
import { VM_GATEWAY } from '../host-agent/data-plane/plan-commands.ts';
import { unpackImageBundle } from '../host-agent/vm-runtime/image-bundle.ts';
import { MigrationIdentity } from '../host-agent/vm-runtime/migration-tls.ts';
import { QemuRuntime } from '../host-agent/vm-runtime/qemu-runtime.ts';
import { macOfVm, plugTap } from '../host-agent/vm-runtime/vm-taps.ts';
import { DataPlaneLab, type LabHost, labUnavailableReason } from '../local/data-plane/lab.ts';
import { ensureGuestImage } from '../local/guest-image/build.ts';
import { publishGuestImage } from '../local/guest-image/publish.ts';
import { type AgentInfo, startLocalStack } from '../local/local-stack.ts';
import { projectRoot } from '../local/processes.ts';
import { takeRunLock } from '../local/run-lock.ts';
import { apiClient } from './api-client.ts';
import { retry, until } from './waiting.ts';

/**
 * Live migration's blackout with real guests: a guest (its TCP echo server started by its startup
 * script) moves back and forth between hosts 2 and 3 through `POST /vms/{id}/migrate`, while a VM
 * of its network on host 1 (a namespace on the data plane, not a guest: a guest under TCG cannot
 * send every 2 ms) pings it every 2 ms (ICMP, answered by the guest's kernel as a UDP echo would
 * be) and keeps one TCP connection to it sending a line every 2 ms. Per migration: QEMU's downtime,
 * the longest silence between two replies, the TCP connection's longest silence, QEMU's transfer
 * time and the control plane's time from the request to the migration's end. Then the floor: the
 * same migrations of another guest driven by the bench alone (QMP, no control plane, no agent),
 * the pinging host's route switched at the source's STOP.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: { runtime: { type: 'string' }, migrations: { type: 'string', default: '30' }, 'control-plane-nice': { type: 'string', default: '19' } },
});
// The emulated AWS (LocalStack, the functions runner) shares this machine's cores with the guests;
// in AWS it runs elsewhere. At nice 19 it takes the CPU the guests leave, as it would on its own machines.
const controlPlaneNice = Number(values['control-plane-nice']);
if (!(Number.isInteger(controlPlaneNice) && controlPlaneNice >= 0 && controlPlaneNice <= 19)) throw new Error('--control-plane-nice must be 0..19');
const migrations = Number(values.migrations);
if (!(Number.isInteger(migrations) && migrations >= 1)) throw new Error('--migrations must be a whole number >= 1');
const unavailable = await labUnavailableReason();
if (unavailable) {
  console.error(`bench:blackout --runtime qemu needs network namespaces and root: ${unavailable}`);
  process.exit(1);
}
if (spawnSync('qemu-system-x86_64', ['--version']).status !== 0) {
  console.error('bench:blackout --runtime qemu needs qemu-system-x86_64 (.ci/run installs QEMU 10 from bookworm-backports)');
  process.exit(1);
}
await takeRunLock();

const run = promisify(execFile);
const ECHO_PORT = 7001;
const PROBE_MS = 2;
const stateDir = path.join(projectRoot, '.local-run', `bench-blackout-${process.pid}`);
const lab = new DataPlaneLab(`bq${process.pid % 100_000}`, '172.31.241');

interface Sample {
  downtimeMs: number;
  silenceMs: number;
  tcpMs?: number;
  totalMs: number;
  controlPlaneMs?: number;
}
const sample = (label: string, index: number, s: Sample) =>
  console.error(
    `${label} ${index + 1}: QEMU downtime ${s.downtimeMs} ms, longest silence ${s.silenceMs.toFixed(0)} ms${s.tcpMs !== undefined ? `, TCP ${s.tcpMs.toFixed(0)} ms` : ''}, transfer ${s.totalMs} ms${s.controlPlaneMs !== undefined ? `, request to end ${s.controlPlaneMs} ms` : ''}`,
  );

/** Pings `ip` from `netns` every 2 ms; `silence(from, to)` is the longest gap between replies in that window (ms). */
function pinger(netns: string, ip: string) {
  const child = lab.spawnIn(netns, ['ping', '-D', '-n', '-i', String(PROBE_MS / 1000), '-W', '1', ip]);
  const replies: number[] = [];
  let buffer = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    for (const line of lines) {
      const match = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(line);
      if (match) replies.push(Number(match[1]) * 1000);
    }
  });
  return {
    silence(from: number, to: number): number {
      const window = replies.filter((time) => time >= from && time <= to);
      const before = replies.filter((time) => time < from).at(-1);
      const times = before !== undefined ? [before, ...window] : window;
      if (times.length < 2) return to - from;
      return Math.max(...times.slice(1).map((time, index) => time - times[index]!));
    },
    lastReplyAt: () => replies.at(-1) ?? 0,
    stop: () => child.kill('SIGINT'),
  };
}

const quantile = (values: number[], q: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil(q * values.length) - 1)]!;
const median = (values: number[]) => quantile(values, 0.5);

let guestCrashes = 0;
const controlPlane: Sample[] = [];
const floor: Sample[] = [];
try {
  const [client, hostA, hostB, floorPeer, floorA, floorB] = (await lab.addHosts(6)) as [LabHost, LabHost, LabHost, LabHost, LabHost, LabHost];
  console.error('starting the local control plane with 3 agents running QEMU guests in their host namespaces...');
  const stack = await startLocalStack({
    agentCount: 3,
    hostPrefix: `bq${process.pid}`,
    agentHosts: [client, hostA, hostB].map(({ underlay, netns }) => ({ address: underlay, netns })),
    agentEnv: { HOST_AGENT_RUNTIME: 'qemu' },
    stateDir,
    log: (line) => /^\[local-aws\]|failed|error/i.test(line) && console.error(line),
  });
  try {
    const operator = await apiClient(stack, 'operator', 'bench');
    const tenant = await apiClient(stack, 'tenant', 'bench-blackout');
    const [agent1, agent2, agent3] = stack.agents as [AgentInfo, AgentInfo, AgentInfo];
    const { imageId } = await publishGuestImage(operator, (line) => console.error(line));
    const { networkId } = await tenant.createNetwork({ body: { name: 'blackout', cidr: '10.203.0.0/24' } });
    const startupScript = `busybox nc -ll -p ${ECHO_PORT} -e cat </dev/null >/dev/null 2>&1 &`;
    const server = await operator.createVm({
      body: { name: 'server', networkId, hostId: agent2.hostId, tenantId: 'bench-blackout', imageId, attributes: { 'startup-script': startupScript } },
    });
    const peerVm = await operator.createVm({ body: { name: 'peer', networkId, hostId: agent1.hostId, tenantId: 'bench-blackout' } });
    const peer = await lab.plugVm(peerVm.vmId, peerVm.ip, client);
    await until(
      async () => (await tenant.getVmConsoleOutput({ params: { vmId: server.vmId } })).output.includes('startup script: running'),
      120_000,
      'the guest ran its startup script',
    );
    const pings = pinger(peer.netns, server.ip);
    const tcp = await retry(() => lab.startProbe(peer, ['probe-tcp', server.ip, String(ECHO_PORT), String(PROBE_MS)]), 30_000);
    await until(async () => pings.lastReplyAt() > 0, 10_000, 'pings answered before the first migration');

    // Set up at full speed; measured with the emulated AWS at its priority (see controlPlaneNice).
    const lowered = deprioritize(stack.controlPlanePids(), controlPlaneNice);
    console.error(`the emulated AWS (LocalStack, functions runner): ${lowered} threads at nice ${controlPlaneNice}`);
    for (let i = 0; i < migrations; i++) {
      const target = i % 2 === 0 ? agent3 : agent2;
      await tcp.report(true);
      const requested = Date.now();
      const started = await operator.migrateVm({ params: { vmId: server.vmId }, body: { targetHostId: target.hostId } });
      const migrationId = started.migration?.migrationId;
      if (!migrationId) throw new Error(`migration ${i + 1}: the guest did not move live (${started.state})`);
      let ended: Awaited<ReturnType<typeof tenant.getVm>> | undefined;
      await until(
        async () => {
          const vm = await tenant.getVm({ params: { vmId: server.vmId } });
          if (vm.lastMigration?.migrationId === migrationId) ended = vm;
          return ended !== undefined;
        },
        120_000,
        `migration ${i + 1} did not end`,
      );
      const endedAt = Date.now();
      if (ended!.lastMigration!.outcome !== 'completed') throw new Error(`migration ${i + 1} aborted: ${ended!.lastMigration!.reason}`);
      // A little more traffic, so the window's longest gap is the migration's.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const report = await tcp.report();
      if (report.tcp.closed || report.tcp.error) throw new Error(`migration ${i + 1}: the TCP connection broke (${report.tcp.error ?? 'closed'})`);
      const silenceMs = pings.silence(requested, Date.now());
      if (ended!.state !== 'running' || pings.lastReplyAt() < endedAt) {
        guestCrashes++;
        const { output } = await tenant.getVmConsoleOutput({ params: { vmId: server.vmId } });
        console.error(`migration ${i + 1}: the guest stopped answering (${ended!.state}); console: ${output.slice(-600)}`);
        break;
      }
      const s = {
        downtimeMs: ended!.lastMigration!.downtimeMs ?? 0,
        silenceMs,
        tcpMs: report.tcp.longestGapMs,
        totalMs: ended!.lastMigration!.totalMs ?? 0,
        controlPlaneMs: endedAt - requested,
      };
      controlPlane.push(s);
      sample('migration', i, s);
    }
    pings.stop();

    // The floor, under the same load (the control plane idles beside it): a guest moved by the bench
    // alone between two hosts, the peer's route switched at STOP.
    const image = await ensureGuestImage({ log: () => {} });
    const boot = unpackImageBundle(readFileSync(image.path), mkdtempSync(path.join(tmpdir(), 'bench-blackout-'))).boot;
    const vmId = 'vm-00000000f100';
    const guestIp = '10.204.0.5';
    const tap = vmInterfaceName(vmId);
    // In TLS, as the agents move guests: the floor pays what the control plane's moves pay.
    const runtimes = await Promise.all(
      [floorA, floorB].map(async (host) => ({
        host,
        runtime: new QemuRuntime({ stateDir: path.join(stateDir, 'floor', host.netns), netns: host.netns }),
        identity: await MigrationIdentity.open(path.join(stateDir, 'floor', `${host.netns}-tls`), host.netns, host.underlay),
      })),
    );
    for (const { host } of runtimes) {
      await plugTap(host.netns, tap);
      await run('ip', ['-n', host.netns, 'addr', 'replace', `${VM_GATEWAY}/32`, 'dev', tap]);
      await run('ip', ['-n', host.netns, 'route', 'replace', `${guestIp}/32`, 'dev', tap]);
    }
    const launch = {
      vmId,
      memoryMiB: 96,
      vcpus: 1,
      boot,
      settings: { ip: `${guestIp}/32`, gateway: VM_GATEWAY, hostname: 'floor' },
      nic: { tap, mac: macOfVm(vmId) },
    };
    try {
      await runtimes[0]!.runtime.start(launch);
      await until(async () => runtimes[0]!.runtime.report(vmId)?.state === 'running', 90_000, 'the floor guest booted');
      await run('ip', ['-n', floorPeer.netns, 'route', 'replace', `${guestIp}/32`, 'via', floorA.underlay]);
      const pings = pinger(floorPeer.netns, guestIp);
      await until(async () => pings.lastReplyAt() > 0, 10_000, 'the floor guest answered pings');
      for (let i = 0; i < migrations; i++) {
        const [from, to] = i % 2 === 0 ? [runtimes[0]!, runtimes[1]!] : [runtimes[1]!, runtimes[0]!];
        const port = 49_300;
        const started = Date.now();
        const move = `floor-${i}`;
        const listen = await to.identity.credentialsFor(move, 'server', from.identity.caCertificate);
        const send = await from.identity.credentialsFor(move, 'client', to.identity.caCertificate);
        const { resumed } = await to.runtime.migration.receive(launch, { address: to.host.underlay, port, credentials: listen });
        const figures = await from.runtime.migration.send(
          vmId,
          { address: to.host.underlay, port, credentials: send },
          {
            boundMs: 30_000,
            onStop: () => void run('ip', ['-n', floorPeer.netns, 'route', 'replace', `${guestIp}/32`, 'via', to.host.underlay]),
          },
        );
        await resumed;
        await from.runtime.stop(vmId);
        await new Promise((resolve) => setTimeout(resolve, 300));
        const s = { downtimeMs: figures.downtimeMs, silenceMs: pings.silence(started, Date.now()), totalMs: figures.totalMs };
        floor.push(s);
        sample('floor', i, s);
      }
      pings.stop();
    } finally {
      for (const { runtime } of runtimes) await runtime.stopAll(500);
    }
  } finally {
    await stack.stop();
  }

  const row = (label: string, values: number[]) =>
    console.log(
      `  ${label.padEnd(52)} median ${median(values).toFixed(0).padStart(5)} ms   p99 ${quantile(values, 0.99).toFixed(0).padStart(5)} ms   worst ${Math.max(
        ...values,
      )
        .toFixed(0)
        .padStart(5)} ms`,
    );
  console.log(
    `bench:blackout --runtime qemu  migrations=${controlPlane.length} (+${floor.length} floor)  hosts=3 + 3  probe every ${PROBE_MS} ms  emulated AWS at nice ${controlPlaneNice}`,
  );
  row(
    'guest silence, through the control plane',
    controlPlane.map((s) => s.silenceMs),
  );
  row(
    'guest silence, floor (bench alone, QMP)',
    floor.map((s) => s.silenceMs),
  );
  row(
    'TCP silence, same connection throughout',
    controlPlane.map((s) => s.tcpMs ?? 0),
  );
  row(
    "QEMU's downtime",
    controlPlane.map((s) => s.downtimeMs),
  );
  row(
    "QEMU's transfer",
    controlPlane.map((s) => s.totalMs),
  );
  row(
    'control plane: request to the end of the migration',
    controlPlane.map((s) => s.controlPlaneMs ?? 0),
  );
  console.log(`  targets: median <= floor median + 10 ms = ${(median(floor.map((s) => s.silenceMs)) + 10).toFixed(0)} ms; p99 <= 150 ms; 0 guest crashes`);
  console.log(
    `blackout_ms median=${median(controlPlane.map((s) => s.silenceMs)).toFixed(0)} p99=${quantile(
      controlPlane.map((s) => s.silenceMs),
      0.99,
    ).toFixed(
      0,
    )} floor_median=${median(floor.map((s) => s.silenceMs)).toFixed(0)} tcp_median=${median(controlPlane.map((s) => s.tcpMs ?? 0)).toFixed(0)} migrations=${controlPlane.length} guest_crashes=${guestCrashes}`,
  );
} finally {
  await lab.destroy();
  rmSync(stateDir, { recursive: true, force: true });
}
