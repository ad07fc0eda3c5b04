import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUEST_IMAGE_MANIFEST } from '#events/guest-image.ts';
import { decodeJws } from '#tokens/jws.ts';
import { readUstar } from '../../host-agent/vm-runtime/image-bundle.ts';
import { ustar } from '../../local/guest-image/archives.ts';
import { ensureGuestImage } from '../../local/guest-image/build.ts';
import { DataPlaneLab, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { qemuUnavailableReason } from '../helpers/guest.ts';
import { uploadImage } from '../helpers/images.ts';
import { tenantToken } from '../helpers/tokens.ts';

const unavailable = (await labUnavailableReason()) ?? qemuUnavailableReason();
if (unavailable) console.warn(`real guest tests skipped: ${unavailable}`);

const FINGERPRINTS = /-----BEGIN SSH HOST KEY FINGERPRINTS-----\ned25519 (SHA256:\S+)\necdsa (SHA256:\S+)\n-----END/;

/**
 * Real guests, placed through the API on a lab host whose agent runs QEMU (`--runtime qemu`): the
 * agent fetches the image from the region's bucket, checks it, boots it on a tap in the host's
 * namespace, and reports what it sees. The guest makes its own SSH host keys and publishes them
 * through its metadata server at 169.254.169.254.
 */
describe.skipIf(unavailable !== undefined)('real guests through the API', () => {
  const lab = new DataPlaneLab(`q${process.pid % 100_000}`, '172.31.247');
  const tenantId = uniqueId('guests');
  const tenant = tenantToken(tenantId);
  const asTenant = (method: string, path: string, body?: unknown) => api(method, path, body, tenant);
  let agent: RunningAgent;
  let networkId: string;
  let imageId: string;
  let brokenImageId: string;
  const vmIds: string[] = [];
  const vmView = async (vmId: string) => expectOk(asTenant('GET', `/vms/${vmId}`));

  beforeAll(async () => {
    const [host] = await lab.addHosts(1);
    agent = await startAgent(uniqueId('qemu'), host!.underlay, 4, undefined, ['--netns', host!.netns, '--runtime', 'qemu']);
    networkId = (await expectOk(asTenant('POST', '/networks', { name: 'guests', cidr: '10.72.0.0/24' }), 201)).networkId;
    const image = readFileSync((await ensureGuestImage({ log: () => {} })).path);
    ({ imageId } = await uploadImage('stratoplane-guest', image, tenant));
    // A well-formed image whose initramfs is garbage: the kernel boots and panics.
    const files = readUstar(image);
    const broken = ustar([
      { path: GUEST_IMAGE_MANIFEST, mode: 0o644, data: files.get(GUEST_IMAGE_MANIFEST)! },
      { path: 'vmlinuz', mode: 0o644, data: files.get('vmlinuz')! },
      { path: 'initrd.img', mode: 0o644, data: Buffer.alloc(4096) },
    ]);
    ({ imageId: brokenImageId } = await uploadImage('no-init', broken, tenant));
    for (const id of [imageId, brokenImageId])
      await eventually(async () => expect((await expectOk(asTenant('GET', `/images/${id}`))).state).toBe('available'), 60_000, 250);
  }, 240_000);

  afterAll(async () => {
    await agent?.process.stop();
    await lab.destroy();
  });

  it('boots two guests of one image (one download), shows their consoles, and publishes the host keys each guest made', async () => {
    const launched = await Promise.all(
      ['guest-1', 'guest-2'].map((name) => expectOk(createVmOn({ name, networkId, hostId: agent.hostId, imageId }, tenantId), 201)),
    );
    vmIds.push(...launched.map((vm) => vm.vmId));
    for (const vm of launched) await eventually(async () => expect((await vmView(vm.vmId)).state).toBe('running'), 120_000, 500);
    expect((await agent.status()).vmRuntime?.images).toMatchObject({ downloads: 1 });

    const [vm] = launched;
    await eventually(
      async () => {
        const { output } = await expectOk(asTenant('GET', `/vms/${vm!.vmId}/console`));
        expect(output.replaceAll('\r', '')).toMatch(FINGERPRINTS);
        expect(output).toContain(`stratoplane-guest: ready ip=${vm!.ip}/32`);
      },
      30_000,
      500,
    );
    const { output } = await expectOk(asTenant('GET', `/vms/${vm!.vmId}/console`));
    const printed = FINGERPRINTS.exec(output.replaceAll('\r', ''))!;
    console.log(
      output
        .replaceAll('\r', '')
        .split('\n')
        .filter((line: string) => line.includes('published'))
        .join('\n'),
    );
    await eventually(
      async () => {
        const { keys } = await expectOk(asTenant('GET', `/vms/${vm!.vmId}/host-keys`));
        expect(keys.map((key: { keyType: string }) => key.keyType).sort()).toEqual(['ecdsa-sha2-nistp256', 'ssh-ed25519']);
      },
      30_000,
      250,
    );
    const published = await expectOk(asTenant('GET', `/vms/${vm!.vmId}/host-keys`));
    expect(Object.fromEntries(published.keys.map((key: { keyType: string; fingerprint: string }) => [key.keyType, key.fingerprint]))).toEqual({
      'ssh-ed25519': printed[1],
      'ecdsa-sha2-nistp256': printed[2],
    });
    expect(decodeJws(published.attestation).payload).toMatchObject({ vmId: vm!.vmId, publishedBy: agent.hostId });
  });

  it('stops a guest with its power button, and starts it again', async () => {
    const vmId = vmIds[0]!;
    await expectOk(asTenant('POST', `/vms/${vmId}/stop`));
    await eventually(async () => expect((await vmView(vmId)).state).toBe('stopped'), 60_000, 500);
    expect((await expectOk(asTenant('GET', `/vms/${vmId}/console`))).output).toContain('stratoplane-guest: shutting down');
    await expectOk(asTenant('POST', `/vms/${vmId}/start`));
    await eventually(async () => expect((await vmView(vmId)).state).toBe('running'), 120_000, 500);
  });

  it('fails a VM whose image does not boot, with the console tail in the reason', async () => {
    const vm = await expectOk(createVmOn({ name: 'no-init', networkId, hostId: agent.hostId, imageId: brokenImageId }, tenantId), 201);
    vmIds.push(vm.vmId);
    await eventually(async () => expect((await vmView(vm.vmId)).state).toBe('failed'), 120_000, 500);
    expect((await vmView(vm.vmId)).stateReason).toMatch(/console: .*Kernel panic - not syncing: VFS: Unable to mount root fs/s);
  });

  it('removes guests from the host when their VMs are deleted', async () => {
    for (const vmId of vmIds) await expectOk(asTenant('DELETE', `/vms/${vmId}`), 204);
    await eventually(async () => expect((await agent.status()).vmRuntime?.guests).toEqual([]), 30_000, 250);
  });
});
