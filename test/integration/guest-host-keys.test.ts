import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJws } from '#tokens/jws.ts';
import { vmInterfaceName } from '../../host-agent/data-plane/desired-state.ts';
import { VM_GATEWAY } from '../../host-agent/data-plane/plan-commands.ts';
import { QemuRuntime } from '../../host-agent/vm-runtime/qemu-runtime.ts';
import { DataPlaneLab, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { guestBoot, qemuUnavailableReason } from '../helpers/guest.ts';

const run = promisify(execFile);
const ip = (args: string[]) => run('ip', args);
const unavailable = (await labUnavailableReason()) ?? qemuUnavailableReason();
if (unavailable) console.warn(`guest host key tests skipped: ${unavailable}`);

/**
 * A real guest on a host of the lab: its NIC is a tap on the host's namespace, where the host
 * agent serves its metadata at 169.254.169.254 (known by that interface); the guest makes its own
 * SSH host keys and publishes them there, and the API then holds them, attested by the host.
 */
describe.skipIf(unavailable !== undefined)('host keys a real guest made itself', () => {
  const lab = new DataPlaneLab(`g${process.pid % 100_000}`, '172.31.248');
  const stateDir = mkdtempSync(path.join(tmpdir(), 'guest-keys-'));
  let agent: RunningAgent;
  let runtime: QemuRuntime;
  let vm: { vmId: string; ip: string };

  beforeAll(async () => {
    const [host] = await lab.addHosts(1);
    agent = await startAgent(uniqueId('gkeys'), host!.underlay, 16, undefined, ['--netns', host!.netns]);
    const network = await expectOk(api('POST', '/networks', { name: 'guest-keys', cidr: '10.71.0.0/24' }), 201);
    vm = await expectOk(createVmOn({ name: 'guest-1', networkId: network.networkId, hostId: agent.hostId }), 201);
    // What the agent's VM runtime will do itself: a tap named for the VM in the host's namespace, QEMU on it.
    const tap = vmInterfaceName(vm.vmId);
    await ip(['-n', host!.netns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await ip(['-n', host!.netns, 'link', 'set', tap, 'up']);
    runtime = new QemuRuntime({ stateDir, netns: host!.netns, bootTimeoutMs: 90_000 });
    await runtime.start({
      vmId: vm.vmId,
      memoryMiB: 96,
      vcpus: 1,
      boot: await guestBoot(),
      settings: { ip: `${vm.ip}/32`, gateway: VM_GATEWAY, hostname: 'guest-1' },
      nic: { tap, mac: '52:54:00:12:34:56' },
    });
  }, 240_000);

  afterAll(async () => {
    await runtime?.stopAll(500);
    await agent?.process.stop();
    await lab.destroy();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("reach the API through the guest's metadata server, and match the fingerprints the guest printed", async () => {
    await eventually(async () => expect(runtime.report(vm.vmId)?.state).toBe('running'), 100_000, 250);
    const console_ = runtime.consoleTail(vm.vmId).replaceAll('\r', '');
    console.log(
      console_
        .split('\n')
        .filter((line) => line.includes('published'))
        .join('\n'),
    );
    expect(console_).toMatch(/published ssh-ed25519 host key: HTTP\/1\.[01] 200/);
    expect(console_).toMatch(/published ecdsa-sha2-nistp256 host key: HTTP\/1\.[01] 200/);
    const printed = /-----BEGIN SSH HOST KEY FINGERPRINTS-----\ned25519 (SHA256:\S+)\necdsa (SHA256:\S+)\n-----END/.exec(console_);
    expect(printed, console_).not.toBeNull();

    const published = await eventually(
      async () => {
        const { keys } = await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`));
        expect(keys.map((key: { keyType: string }) => key.keyType).sort()).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519']);
      },
      20_000,
      250,
    );
    expect(published).toBeGreaterThanOrEqual(0);
    const { keys, attestation } = await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`));
    const fingerprints = Object.fromEntries(keys.map((key: { keyType: string; fingerprint: string }) => [key.keyType, key.fingerprint]));
    expect(fingerprints).toEqual({ 'ssh-ed25519': printed![1], 'ecdsa-sha2-nistp256': printed![2] });
    expect(decodeJws(attestation).payload).toMatchObject({ vmId: vm.vmId, publishedBy: agent.hostId });
    for (const key of keys) expect(key.knownHostsLine).toMatch(new RegExp(`^${vm.ip.replaceAll('.', '\\.')} ${key.keyType} [A-Za-z0-9+/=]+$`));
  });
});
