import { existsSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGuestImage } from '../../local/guest-image/build.ts';
import { DataPlaneLab, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { qemuUnavailableReason } from '../helpers/guest.ts';
import { uploadImage } from '../helpers/images.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

const unavailable = (await labUnavailableReason()) ?? qemuUnavailableReason();
if (unavailable) console.warn(`real guest disk tests skipped: ${unavailable}`);

const GiB = 1024 ** 3;

/**
 * Disks made and attached through the API, as a real guest sees them: the host agent (`--runtime
 * qemu`) plugs them in (hot-plug on attach, at boot otherwise), QEMU enforces their limits and
 * changes them live, the guest says which disks it has on its console, and what the guest wrote
 * is still there after a stop and a start.
 */
describe.skipIf(unavailable !== undefined)('disks in real guests', () => {
  const lab = new DataPlaneLab(`d${process.pid % 100_000}`, '172.31.241');
  const tenantId = uniqueId('disk-guests');
  const tenant = tenantToken(tenantId);
  const asTenant = (method: string, route: string, body?: unknown) => api(method, route, body, tenant);
  const poolId = uniqueId('guest-pool');
  let agent: RunningAgent;
  let vmId: string;
  let diskId: string;
  const vmDir = () => path.join(tmpdir(), 'stratoplane-test-vms', agent.hostId);
  const consoleOf = async () => ((await expectOk(asTenant('GET', `/vms/${vmId}/console`))).output as string).replaceAll('\r', '');
  const vmView = async () => expectOk(asTenant('GET', `/vms/${vmId}`));
  /** What QEMU enforces on the VM's disks now (query-block, through the agent's control socket). */
  const enforced = async () => {
    const answer = await agent.control('GET', `/vms/${vmId}/disks`);
    expect(answer.status).toBe(200);
    return answer.body.disks as { diskId: string; iops: number; throughputMiBps: number; sizeBytes: number }[];
  };

  beforeAll(async () => {
    const [host] = await lab.addHosts(1);
    agent = await startAgent(uniqueId('qemu-disks'), host!.underlay, 4, undefined, ['--netns', host!.netns, '--runtime', 'qemu', '--auto-placement', 'off']);
    await expectOk(api('POST', '/storage-pools', { poolId, capacityGiB: 1000, iops: 100_000, throughputMiBps: 10_000 }, operatorToken()), 201);
    const { networkId } = await expectOk(asTenant('POST', '/networks', { name: 'disk-guests', cidr: '10.73.0.0/24' }), 201);
    const { imageId } = await uploadImage('stratoplane-guest', readFileSync((await ensureGuestImage({ log: () => {} })).path), tenant);
    // On this file's host (placement could pick another test's host, where no agent runs).
    ({ vmId } = await expectOk(createVmOn({ name: 'disks', networkId, hostId: agent.hostId, imageId }, tenantId), 201));
    await eventually(async () => expect((await vmView()).state).toBe('running'), 120_000, 500);
  }, 300_000);

  afterAll(async () => {
    await agent?.process.stop();
    await lab.destroy();
  });

  it('hot-plugs a disk attached through the API, with its limits in QEMU, and changes limits and size live', async () => {
    // In this file's pool: one another file left nearly full would refuse the growth below.
    const disk = await expectOk(api('POST', '/disks', { name: 'data', sizeGiB: 2, iops: 3000, throughputMiBps: 125, poolId, tenantId }, operatorToken()), 201);
    diskId = disk.diskId;
    await expectOk(asTenant('POST', `/disks/${diskId}/attach`, { vmId }));
    await eventually(async () => expect(await enforced()).toEqual([{ diskId, iops: 3000, throughputMiBps: 125, sizeBytes: 2 * GiB }]), 60_000, 250);
    await eventually(
      async () => expect(await consoleOf()).toMatch(new RegExp(`stratoplane-guest: disk vd[a-z] serial=${diskId} bytes=${2 * GiB}`)),
      60_000,
      1000,
    );
    // A sparse file in its pool's folder on the VM's host.
    const file = path.join(vmDir(), 'pools', disk.poolId, `${diskId}.raw`);
    expect(statSync(file).size).toBe(2 * GiB);

    // 12 GiB allow 6000 IOPS (rule iops-per-gib): grown and re-limited while the guest runs.
    await expectOk(asTenant('PATCH', `/disks/${diskId}`, { sizeGiB: 12, iops: 6000, throughputMiBps: 250 }));
    await eventually(async () => expect(await enforced()).toEqual([{ diskId, iops: 6000, throughputMiBps: 250, sizeBytes: 12 * GiB }]), 60_000, 250);
    await eventually(
      async () => expect(await consoleOf()).toMatch(new RegExp(`stratoplane-guest: disk vd[a-z] serial=${diskId} bytes=${12 * GiB}`)),
      60_000,
      1000,
    );
    expect((await vmView()).stateReason).toBeUndefined();
  });

  it('keeps what the guest wrote across a stop and a start, the disk plugged in at boot', async () => {
    // The guest's owner script: write a marker on the disk the first time, show what is there every boot.
    const script = `#!/bin/sh
for i in $(seq 60); do
  for b in /sys/block/vd*; do [ "$(cat $b/serial 2>/dev/null)" = "${diskId}" ] && dev=/dev/\${b##*/}; done
  [ -n "$dev" ] && break
  sleep 1
done
found=$(dd if=$dev bs=512 count=1 iflag=direct 2>/dev/null | head -c 24 | tr -d '\\000')
echo "disk-data: [\${found}]"
[ -z "$found" ] && printf 'written-by-boot-%s' "$(cat /proc/sys/kernel/random/uuid | cut -c1-8)" | dd of=$dev bs=512 conv=sync,fsync oflag=direct 2>/dev/null && echo "disk-data: written"
`;
    await expectOk(asTenant('PUT', `/vms/${vmId}/attributes`, { attributes: { 'startup-script': script } }));
    const restart = async () => {
      await expectOk(asTenant('POST', `/vms/${vmId}/stop`));
      await eventually(async () => expect((await vmView()).state).toBe('stopped'), 60_000, 500);
      await expectOk(asTenant('POST', `/vms/${vmId}/start`));
      await eventually(async () => expect((await vmView()).state).toBe('running'), 120_000, 500);
    };
    await restart();
    await eventually(async () => expect(await consoleOf()).toContain('startup-script: disk-data: written'), 60_000, 1000);
    const written = /startup-script: disk-data: \[\]/.test(await consoleOf());
    expect(written).toBe(true);
    await restart();
    // Plugged in before the guest started: QEMU has it at boot with its limits.
    expect(await enforced()).toEqual([{ diskId, iops: 6000, throughputMiBps: 250, sizeBytes: 12 * GiB }]);
    await eventually(async () => expect(await consoleOf()).toMatch(/startup-script: disk-data: \[written-by-boot-[0-9a-f]{8}\]/), 60_000, 1000);
  });

  it('unplugs a detached disk from the guest, keeps its file until the disk is deleted, then removes it', async () => {
    const file = path.join(vmDir(), 'pools', (await expectOk(asTenant('GET', `/disks/${diskId}`))).poolId, `${diskId}.raw`);
    await expectOk(asTenant('POST', `/disks/${diskId}/detach`));
    await eventually(async () => expect(await enforced()).toEqual([]), 60_000, 250);
    await eventually(
      async () =>
        expect(
          (await consoleOf())
            .split('\n')
            .filter((line) => line.includes('stratoplane-guest: disk'))
            .at(-1),
        ).toBe('stratoplane-guest: disks none'),
      60_000,
      1000,
    );
    expect(existsSync(file)).toBe(true);
    expect((await asTenant('DELETE', `/disks/${diskId}`)).status).toBe(204);
    await eventually(async () => expect(existsSync(file)).toBe(false), 30_000, 250);
  });

  it("refuses a tenant another tenant's disk, and another tenant's VM", async () => {
    const other = tenantToken(uniqueId('disk-thief'));
    const theirs = await expectOk(asTenant('POST', '/disks', { name: 'theirs', sizeGiB: 1 }), 201);
    const mine = await expectOk(api('POST', '/disks', { name: 'mine', sizeGiB: 1 }, other), 201);
    expect((await api('POST', `/disks/${theirs.diskId}/attach`, { vmId }, other)).status).toBe(404);
    expect((await api('POST', `/disks/${mine.diskId}/attach`, { vmId }, other)).status).toBe(404);
    expect(await enforced()).toEqual([]);
    await asTenant('DELETE', `/disks/${theirs.diskId}`);
    await api('DELETE', `/disks/${mine.diskId}`, undefined, other);
    expect((await asTenant('DELETE', `/vms/${vmId}`)).status).toBe(204);
  });
});
