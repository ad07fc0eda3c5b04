import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { DescribeKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { decodeJws, verifyEs256 } from '#tokens/jws.ts';
import { KmsPublicKeys } from '#tokens/kms-public-keys.ts';
import { projectRoot } from '../../local/processes.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';
import { tokenFor } from '../helpers/tokens.ts';

const run = promisify(execFile);

/** Boots a simulated VM process against a metadata server; returns what it reported. */
async function bootVm(metadataUrl: string) {
  const keyDir = mkdtempSync(path.join(tmpdir(), 'vm-'));
  const { stdout } = await run(process.execPath, ['--import', 'tsx', 'test/fixtures/simulated-vm.ts', '--metadata-url', metadataUrl, '--key-dir', keyDir], {
    cwd: projectRoot,
  });
  return JSON.parse(stdout) as { vmId: string; publicKeyFile: string; status: number; answer: string };
}

describe('VM SSH host keys', () => {
  let h1: RunningAgent;
  let h2: RunningAgent;
  let vm: any;

  const metadataUrlOf = async (agent: RunningAgent, vmId: string) => {
    let url = '';
    await eventually(async () => {
      url = ((await agent.status()) as any).vms[vmId]?.metadataUrl;
      expect(url).toBeTruthy();
    });
    return url;
  };

  beforeAll(async () => {
    [h1, h2] = await Promise.all([startAgent(uniqueId('keys1'), '198.51.100.161'), startAgent(uniqueId('keys2'), '198.51.100.162')]);
    const network = await expectOk(api('POST', '/networks', { name: 'keys', cidr: '10.70.0.0/24' }), 201);
    vm = await expectOk(createVmOn({ name: 'ssh-target', networkId: network.networkId, hostId: h1.hostId }), 201);
  });

  afterAll(async () => {
    await Promise.all([h1, h2].filter(Boolean).map((agent) => agent.process.stop()));
  });

  it('publishes a key the VM made through its metadata server, with the fingerprint ssh-keygen computes', async () => {
    const booted = await bootVm(await metadataUrlOf(h1, vm.vmId));
    expect(booted).toMatchObject({ vmId: vm.vmId, status: 200 });

    const { keys, attestation, publishedAt } = await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`));
    const { stdout } = await run('ssh-keygen', ['-lf', booted.publicKeyFile]);
    const [, sshKeygenFingerprint] = stdout.trim().split(/\s+/);
    const [type, data] = readFileSync(booted.publicKeyFile, 'utf8').trim().split(' ');
    expect(keys).toEqual([
      { keyType: 'ssh-ed25519', publicKey: `${type} ${data}`, fingerprint: sshKeygenFingerprint, knownHostsLine: `${vm.ip} ${type} ${data}` },
    ]);

    // The attestation verifies offline against the attestation key's public key and binds VM, key, host and time.
    const jws = decodeJws(attestation);
    const kms = new KMSClient(localAwsConfig());
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: keyAlias('host-key-attestations', deploymentFromEnvironment()) }));
    expect(jws.header.kid).toBe(KeyMetadata!.KeyId);
    const publicKeys = new KmsPublicKeys(kms, [KeyMetadata!.Arn!]);
    expect(verifyEs256(jws.signingInput, jws.signature, await publicKeys.get(jws.header.kid))).toBe(true);
    expect(jws.payload).toMatchObject({ vmId: vm.vmId, keys: [{ keyType: 'ssh-ed25519', fingerprint: sshKeygenFingerprint }], publishedBy: h1.hostId });
    expect(Math.abs((jws.payload.iat as number) * 1000 - Date.parse(publishedAt))).toBeLessThan(1000);
  });

  it('refuses metadata requests without the Metadata-Flavor header, and malformed keys', async () => {
    const metadataUrl = await metadataUrlOf(h1, vm.vmId);
    const bare = await fetch(`${metadataUrl}/computeMetadata/v1/instance/id`);
    expect(bare.status).toBe(403);
    expect(await bare.text()).toMatch(/Missing Metadata-Flavor:Stratoplane header/);
    const garbage = await fetch(`${metadataUrl}/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519`, {
      method: 'PUT',
      headers: { 'metadata-flavor': 'Stratoplane' },
      body: 'AAAAC3NzaC1lZDI1NTE5AAAAIA==',
    });
    expect(garbage.status).toBe(400);
    expect(await garbage.text()).toMatch(/is not a ssh-ed25519 public key/);
  });

  it('lets only the host the VM runs on publish, also after a migration', async () => {
    const key = (await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`))).keys[0].publicKey;
    const publish = (asHost: string, pathHost: string) => api('PUT', `/hosts/${pathHost}/vms/${vm.vmId}/host-keys`, { keys: [key] }, tokenFor('host', asHost));
    expect((await publish(h2.hostId, h2.hostId)).status).toBe(403);
    expect((await publish(h2.hostId, h1.hostId)).status).toBe(403);
    expect((await api('PUT', `/hosts/${h1.hostId}/vms/${vm.vmId}/host-keys`, { keys: [key] })).status).toBe(403);

    await expectOk(migrateVmTo(vm.vmId, h2.hostId));
    const newUrl = await metadataUrlOf(h2, vm.vmId);
    await eventually(async () => expect(((await h1.status()) as any).vms[vm.vmId]).toBeUndefined());
    const publishedByOld = await publish(h1.hostId, h1.hostId);
    expect(publishedByOld.status).toBe(403);
    expect(publishedByOld.body.message).toBe(`vm ${vm.vmId} does not run on host ${h1.hostId}`);

    expect((await bootVm(newUrl)).status).toBe(200);
    const { attestation } = await expectOk(api('GET', `/vms/${vm.vmId}/host-keys`));
    expect(decodeJws(attestation).payload.publishedBy).toBe(h2.hostId);
  });
});
