import { beforeAll, describe, expect, inject, it } from 'vitest';
import { api, createVmOn, expectOk, uniqueId, type ApiResponse } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

/**
 * Tenant A drives every route of the API against tenant B's resources. Another tenant's resource
 * must look exactly like one that does not exist (404), never like a forbidden one (403), and
 * nothing of B's may change.
 */
describe('tenant isolation', () => {
  const [tenantAId, tenantBId] = [uniqueId('tenant-a'), uniqueId('tenant-b')];
  const tenantA = tenantToken(tenantAId);
  const tenantB = tenantToken(tenantBId);
  const hostIds = [uniqueId('iso1'), uniqueId('iso2')];
  let networkB: any;
  let vmB: any;
  let accountB: any;
  let vmA: any;
  let accountA: any;
  let diskB: any;
  let imageB: any;
  let jobB: any;

  beforeAll(async () => {
    for (const [i, hostId] of hostIds.entries()) {
      await expectOk(api('POST', '/hosts', { hostId, address: `198.51.100.${120 + i}`, capacity: 8 }, operatorToken()), 201);
    }
    await keepAlive(...hostIds);
    networkB = await expectOk(api('POST', '/networks', { name: 'b-private', cidr: '10.90.0.0/24' }, tenantB), 201);
    vmB = await expectOk(createVmOn({ name: 'b-vm', networkId: networkB.networkId, hostId: hostIds[0]! }, tenantBId), 201);
    accountB = await expectOk(api('POST', '/service-accounts', { name: 'b-robot' }, tenantB), 201);
    vmB = await expectOk(api('PUT', `/vms/${vmB.vmId}/service-account`, { serviceAccountId: accountB.serviceAccountId }, tenantB));
    const networkA = await expectOk(api('POST', '/networks', { name: 'a-private', cidr: '10.91.0.0/24' }, tenantA), 201);
    vmA = await expectOk(createVmOn({ name: 'a-vm', networkId: networkA.networkId, hostId: hostIds[1]! }, tenantAId), 201);
    accountA = await expectOk(api('POST', '/service-accounts', { name: 'a-robot' }, tenantA), 201);
    await expectOk(api('POST', '/storage-pools', { poolId: uniqueId('iso-pool'), capacityGiB: 100, iops: 10_000, throughputMiBps: 500 }, operatorToken()), 201);
    diskB = await expectOk(api('POST', '/disks', { name: 'b-data', sizeGiB: 10 }, tenantB), 201);
    diskB = await expectOk(api('POST', `/disks/${diskB.diskId}/attach`, { vmId: vmB.vmId }, tenantB));
    vmB = await expectOk(api('GET', `/vms/${vmB.vmId}`, undefined, tenantB));
    imageB = (await expectOk(api('POST', '/images', { name: 'b-image', sizeBytes: 10, sha256: '0'.repeat(64) }, tenantB), 201)).image;
    jobB = await expectOk(api('POST', '/shuffle-jobs', { name: 'b-job', workerVmIds: [vmB.vmId] }, tenantB), 201);
    vmB = await expectOk(api('GET', `/vms/${vmB.vmId}`, undefined, tenantB));
  });

  const notFound = (response: ApiResponse, kind: string, id: string) => {
    expect(response.status).toBe(404);
    expect(response.body).toEqual({ message: `${kind} ${id} not found` });
  };

  /** One check per route; the last test makes sure no route of the API is missing here. */
  const attempts: Record<string, () => Promise<void>> = {
    'GET /openapi.json': async () => expect(JSON.stringify(await expectOk(api('GET', '/openapi.json', undefined, tenantA)))).not.toContain(networkB.tenantId),
    'POST /hosts': async () =>
      expect((await api('POST', '/hosts', { hostId: uniqueId('evil'), address: '198.51.100.200', capacity: 1 }, tenantA)).status).toBe(403),
    'GET /hosts': async () => expect((await api('GET', '/hosts', undefined, tenantA)).status).toBe(403),
    // Revoking another tenant's token would be a denial of service: operators only.
    'POST /token-revocations': async () => expect((await api('POST', '/token-revocations', { token: await tenantB }, tenantA)).status).toBe(403),
    'GET /hosts/{hostId}/forwarding-table': async () =>
      expect((await api('GET', `/hosts/${hostIds[0]}/forwarding-table`, undefined, tenantA)).status).toBe(403),
    'GET /hosts/{hostId}': async () => expect((await api('GET', `/hosts/${hostIds[0]}`, undefined, tenantA)).status).toBe(403),
    // Saying another tenant's host is alive, or keeping VMs off it, or emptying it: hosts and operators only.
    'PUT /hosts/{hostId}/heartbeat': async () => expect((await api('PUT', `/hosts/${hostIds[0]}/heartbeat`, undefined, tenantA)).status).toBe(403),
    'POST /hosts/{hostId}/cordon': async () => expect((await api('POST', `/hosts/${hostIds[0]}/cordon`, undefined, tenantA)).status).toBe(403),
    'POST /hosts/{hostId}/uncordon': async () => expect((await api('POST', `/hosts/${hostIds[0]}/uncordon`, undefined, tenantA)).status).toBe(403),
    'POST /hosts/{hostId}/drain': async () => expect((await api('POST', `/hosts/${hostIds[0]}/drain`, undefined, tenantA)).status).toBe(403),
    'POST /projects': async () => {
      const created = await expectOk(api('POST', '/projects', { name: 'a-project' }, tenantA), 201);
      expect(created.tenantId).not.toBe(networkB.tenantId);
    },
    'GET /projects': async () => {
      const { projects } = await expectOk(api('GET', '/projects?limit=100', undefined, tenantA));
      expect(projects.map((project: any) => project.projectId)).not.toContain(networkB.projectId);
    },
    'GET /projects/{projectId}': async () => notFound(await api('GET', `/projects/${networkB.projectId}`, undefined, tenantA), 'project', networkB.projectId),
    'GET /projects/{projectId}/graph': async () =>
      notFound(await api('GET', `/projects/${networkB.projectId}/graph`, undefined, tenantA), 'project', networkB.projectId),
    'DELETE /projects/{projectId}': async () =>
      notFound(await api('DELETE', `/projects/${networkB.projectId}`, undefined, tenantA), 'project', networkB.projectId),
    'DELETE /networks/{networkId}': async () =>
      notFound(await api('DELETE', `/networks/${networkB.networkId}`, undefined, tenantA), 'network', networkB.networkId),
    'DELETE /service-accounts/{serviceAccountId}': async () =>
      notFound(await api('DELETE', `/service-accounts/${accountB.serviceAccountId}`, undefined, tenantA), 'service account', accountB.serviceAccountId),
    'POST /networks': async () => {
      // Not into B's project either.
      notFound(await api('POST', '/networks', { name: 'a-in-b', cidr: '10.92.0.0/24', projectId: networkB.projectId }, tenantA), 'project', networkB.projectId);
      const created = await expectOk(api('POST', '/networks', { name: 'a-own', cidr: '10.90.0.0/24' }, tenantA), 201);
      expect(created.tenantId).not.toBe(networkB.tenantId);
    },
    'GET /networks': async () => {
      const { networks } = await expectOk(api('GET', '/networks?limit=100', undefined, tenantA));
      expect(networks.map((network: any) => network.networkId)).not.toContain(networkB.networkId);
    },
    'GET /networks/{networkId}': async () => notFound(await api('GET', `/networks/${networkB.networkId}`, undefined, tenantA), 'network', networkB.networkId),
    'POST /vms': async () => notFound(await api('POST', '/vms', { name: 'intruder', networkId: networkB.networkId }, tenantA), 'network', networkB.networkId),
    'GET /vms': async () => {
      const { vms } = await expectOk(api('GET', '/vms?limit=100', undefined, tenantA));
      expect(vms.map((vm: any) => vm.vmId)).not.toContain(vmB.vmId);
      notFound(await api('GET', `/vms?networkId=${networkB.networkId}`, undefined, tenantA), 'network', networkB.networkId);
    },
    'GET /vms/{vmId}': async () => notFound(await api('GET', `/vms/${vmB.vmId}`, undefined, tenantA), 'vm', vmB.vmId),
    'POST /vms/{vmId}/migrate': async () => notFound(await api('POST', `/vms/${vmB.vmId}/migrate`, {}, tenantA), 'vm', vmB.vmId),
    'GET /vms/{vmId}/host-keys': async () => notFound(await api('GET', `/vms/${vmB.vmId}/host-keys`, undefined, tenantA), 'vm', vmB.vmId),
    'GET /vms/{vmId}/convergence': async () => notFound(await api('GET', `/vms/${vmB.vmId}/convergence`, undefined, tenantA), 'vm', vmB.vmId),
    'POST /vms/{vmId}/start': async () => notFound(await api('POST', `/vms/${vmB.vmId}/start`, undefined, tenantA), 'vm', vmB.vmId),
    'POST /vms/{vmId}/stop': async () => notFound(await api('POST', `/vms/${vmB.vmId}/stop`, undefined, tenantA), 'vm', vmB.vmId),
    'POST /vms/{vmId}/reboot': async () => notFound(await api('POST', `/vms/${vmB.vmId}/reboot`, undefined, tenantA), 'vm', vmB.vmId),
    'GET /vms/{vmId}/console': async () => notFound(await api('GET', `/vms/${vmB.vmId}/console`, undefined, tenantA), 'vm', vmB.vmId),
    'PUT /hosts/{hostId}/vms/{vmId}/state': async () =>
      expect((await api('PUT', `/hosts/${hostIds[0]}/vms/${vmB.vmId}/state`, { state: 'failed', observedAt: Date.now() }, tenantA)).status).toBe(403),
    'PUT /hosts/{hostId}/vms/{vmId}/migration': async () =>
      expect((await api('PUT', `/hosts/${hostIds[0]}/vms/${vmB.vmId}/migration`, { migrationId: 'mig-000000000001', event: 'resumed' }, tenantA)).status).toBe(
        403,
      ),
    'GET /hosts/{hostId}/vms/{vmId}/migration': async () =>
      expect((await api('GET', `/hosts/${hostIds[0]}/vms/${vmB.vmId}/migration`, undefined, tenantA)).status).toBe(403),
    'POST /hosts/{hostId}/endpoint-acks': async () =>
      expect((await api('POST', `/hosts/${hostIds[0]}/endpoint-acks`, { acks: [{ vmId: vmB.vmId, version: 99 }] }, tenantA)).status).toBe(403),
    'PUT /hosts/{hostId}/vms/{vmId}/host-keys': async () =>
      expect((await api('PUT', `/hosts/${hostIds[0]}/vms/${vmB.vmId}/host-keys`, { keys: ['ssh-ed25519 AAAA'] }, tenantA)).status).toBe(403),
    'POST /service-accounts': async () => {
      const created = await expectOk(api('POST', '/service-accounts', { name: 'a-other' }, tenantA), 201);
      expect(created.tenantId).not.toBe(accountB.tenantId);
    },
    'GET /service-accounts': async () => {
      const { serviceAccounts } = await expectOk(api('GET', '/service-accounts?limit=100', undefined, tenantA));
      expect(serviceAccounts.map((account: any) => account.serviceAccountId)).not.toContain(accountB.serviceAccountId);
    },
    'GET /service-accounts/{serviceAccountId}': async () =>
      notFound(await api('GET', `/service-accounts/${accountB.serviceAccountId}`, undefined, tenantA), 'service account', accountB.serviceAccountId),
    'PUT /vms/{vmId}/service-account': async () => {
      notFound(await api('PUT', `/vms/${vmB.vmId}/service-account`, { serviceAccountId: accountA.serviceAccountId }, tenantA), 'vm', vmB.vmId);
      // Nor can A borrow B's account for its own VM.
      const borrowed = await api('PUT', `/vms/${vmA.vmId}/service-account`, { serviceAccountId: accountB.serviceAccountId }, tenantA);
      notFound(borrowed, 'service account', accountB.serviceAccountId);
    },
    'DELETE /vms/{vmId}/service-account': async () => notFound(await api('DELETE', `/vms/${vmB.vmId}/service-account`, undefined, tenantA), 'vm', vmB.vmId),
    'POST /hosts/{hostId}/service-account-credentials': async () =>
      expect(
        (
          await api(
            'POST',
            `/hosts/${hostIds[0]}/service-account-credentials`,
            { publicKey: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43) } },
            tenantA,
          )
        ).status,
      ).toBe(403),
    'PUT /networks/{networkId}/allowed-sources/{sourceNetworkId}': async () => {
      notFound(await api('PUT', `/networks/${networkB.networkId}/allowed-sources/${vmA.networkId}`, undefined, tenantA), 'network', networkB.networkId);
      // Nor may A open its own network to B's.
      notFound(await api('PUT', `/networks/${vmA.networkId}/allowed-sources/${networkB.networkId}`, undefined, tenantA), 'network', networkB.networkId);
    },
    'DELETE /networks/{networkId}/allowed-sources/{sourceNetworkId}': async () =>
      notFound(await api('DELETE', `/networks/${networkB.networkId}/allowed-sources/${networkB.networkId}`, undefined, tenantA), 'network', networkB.networkId),
    'GET /networks/{networkId}/allowed-sources': async () =>
      notFound(await api('GET', `/networks/${networkB.networkId}/allowed-sources`, undefined, tenantA), 'network', networkB.networkId),
    'POST /vms/{vmId}/connections': async () => {
      notFound(await api('POST', `/vms/${vmB.vmId}/connections`, { destinationVmId: vmA.vmId }, tenantA), 'vm', vmB.vmId);
      notFound(await api('POST', `/vms/${vmA.vmId}/connections`, { destinationVmId: vmB.vmId }, tenantA), 'vm', vmB.vmId);
    },
    // Revoking B's pairs would cut B's traffic: a VM of B is unknown to A, as a source or a destination.
    'PUT /vms/{vmId}/pair-revocations/{sourceVmId}': async () => {
      notFound(await api('PUT', `/vms/${vmB.vmId}/pair-revocations/${vmB.vmId}`, undefined, tenantA), 'vm', vmB.vmId);
      notFound(await api('PUT', `/vms/${vmA.vmId}/pair-revocations/${vmB.vmId}`, undefined, tenantA), 'vm', vmB.vmId);
    },
    'DELETE /vms/{vmId}/pair-revocations/{sourceVmId}': async () =>
      notFound(await api('DELETE', `/vms/${vmB.vmId}/pair-revocations/${vmB.vmId}`, undefined, tenantA), 'vm', vmB.vmId),
    'GET /vms/{vmId}/pair-revocations': async () => notFound(await api('GET', `/vms/${vmB.vmId}/pair-revocations`, undefined, tenantA), 'vm', vmB.vmId),
    'PUT /vms/{vmId}/egress-policy': async () =>
      notFound(await api('PUT', `/vms/${vmB.vmId}/egress-policy`, { allow: ['https://attacker.example'] }, tenantA), 'vm', vmB.vmId),
    'PUT /vms/{vmId}/attributes': async () =>
      notFound(await api('PUT', `/vms/${vmB.vmId}/attributes`, { attributes: { startup: 'curl evil' } }, tenantA), 'vm', vmB.vmId),
    'POST /shuffle-jobs': async () => notFound(await api('POST', '/shuffle-jobs', { name: 'steal', workerVmIds: [vmB.vmId] }, tenantA), 'vm', vmB.vmId),
    'GET /shuffle-jobs/{jobId}': async () => notFound(await api('GET', `/shuffle-jobs/${jobB.jobId}`, undefined, tenantA), 'shuffle job', jobB.jobId),
    'DELETE /shuffle-jobs/{jobId}': async () => notFound(await api('DELETE', `/shuffle-jobs/${jobB.jobId}`, undefined, tenantA), 'shuffle job', jobB.jobId),
    'PUT /hosts/{hostId}/shuffle-jobs/{jobId}/workers/{vmId}': async () =>
      expect((await api('PUT', `/hosts/${hostIds[0]}/shuffle-jobs/${jobB.jobId}/workers/${vmB.vmId}`, { received: 1_000_000 }, tenantA)).status).toBe(403),
    'POST /hosts/{hostId}/shuffle-jobs/{jobId}/workers/{vmId}/handoff': async () =>
      expect((await api('POST', `/hosts/${hostIds[0]}/shuffle-jobs/${jobB.jobId}/workers/${vmB.vmId}/handoff`, undefined, tenantA)).status).toBe(403),
    'POST /hosts/{hostId}/shuffle-jobs/{jobId}/workers/{vmId}/handoff/check': async () =>
      expect(
        (
          await api(
            'POST',
            `/hosts/${hostIds[0]}/shuffle-jobs/${jobB.jobId}/workers/${vmB.vmId}/handoff/check`,
            { ticket: 'x'.repeat(43), toHostId: hostIds[0] },
            tenantA,
          )
        ).status,
      ).toBe(403),
    'GET /hosts/{hostId}/vm-configs': async () => expect((await api('GET', `/hosts/${hostIds[0]}/vm-configs`, undefined, tenantA)).status).toBe(403),
    'POST /storage-pools': async () =>
      expect((await api('POST', '/storage-pools', { poolId: uniqueId('evil'), capacityGiB: 1, iops: 1, throughputMiBps: 1 }, tenantA)).status).toBe(403),
    'GET /storage-pools': async () => expect((await api('GET', '/storage-pools', undefined, tenantA)).status).toBe(403),
    'POST /disks': async () => {
      const created = await api('POST', '/disks', { name: 'a-data', sizeGiB: 10 }, tenantA);
      if (created.status === 201) expect(created.body.tenantId).not.toBe(diskB.tenantId);
      else expect(created.status).toBe(409);
    },
    'GET /disks': async () => {
      const { disks } = await expectOk(api('GET', '/disks?limit=100', undefined, tenantA));
      expect(disks.map((disk: any) => disk.diskId)).not.toContain(diskB.diskId);
    },
    'GET /disks/{diskId}': async () => notFound(await api('GET', `/disks/${diskB.diskId}`, undefined, tenantA), 'disk', diskB.diskId),
    'PATCH /disks/{diskId}': async () => notFound(await api('PATCH', `/disks/${diskB.diskId}`, { sizeGiB: 20 }, tenantA), 'disk', diskB.diskId),
    'DELETE /disks/{diskId}': async () => notFound(await api('DELETE', `/disks/${diskB.diskId}`, undefined, tenantA), 'disk', diskB.diskId),
    'POST /disks/{diskId}/attach': async () => {
      notFound(await api('POST', `/disks/${diskB.diskId}/attach`, { vmId: vmA.vmId }, tenantA), 'disk', diskB.diskId);
    },
    'POST /disks/{diskId}/detach': async () => notFound(await api('POST', `/disks/${diskB.diskId}/detach`, undefined, tenantA), 'disk', diskB.diskId),
    'POST /images': async () => {
      const created = await expectOk(api('POST', '/images', { name: 'a-image', sizeBytes: 10, sha256: '0'.repeat(64) }, tenantA), 201);
      expect(created.image.tenantId).not.toBe(imageB.tenantId);
    },
    'GET /images': async () => {
      const { images } = await expectOk(api('GET', '/images?limit=100', undefined, tenantA));
      expect(images.map((image: any) => image.imageId)).not.toContain(imageB.imageId);
      // B's image is not public either.
      const listed = await expectOk(api('GET', '/images?owner=public&limit=100', undefined, tenantA));
      expect(listed.images.map((image: any) => image.imageId)).not.toContain(imageB.imageId);
    },
    'GET /images/{imageId}': async () => notFound(await api('GET', `/images/${imageB.imageId}`, undefined, tenantA), 'image', imageB.imageId),
    'POST /images/{imageId}/complete': async () =>
      notFound(await api('POST', `/images/${imageB.imageId}/complete`, { parts: [{ partNumber: 1, etag: '"x"' }] }, tenantA), 'image', imageB.imageId),
    'DELETE /vms/{vmId}': async () => notFound(await api('DELETE', `/vms/${vmB.vmId}`, undefined, tenantA), 'vm', vmB.vmId),
    'GET /quotas': async () => {
      // Naming another tenant is an operator's right; A's own answer counts only A's.
      expect((await api('GET', `/quotas?tenantId=${tenantBId}`, undefined, tenantA)).status).toBe(403);
      expect((await expectOk(api('GET', '/quotas', undefined, tenantA))).tenantId).toBe(tenantAId);
    },
    'PUT /quotas/{tenantId}': async () => {
      // Neither B's limits nor its own: limits are set by operators only.
      expect((await api('PUT', `/quotas/${tenantBId}`, { vms: 0 }, tenantA)).status).toBe(403);
      expect((await api('PUT', `/quotas/${tenantAId}`, { vms: 100_000 }, tenantA)).status).toBe(403);
    },
  };

  it.each(Object.keys(attempts))('tenant A: %s gets nothing of tenant B', async (route) => {
    await attempts[route]!();
  });

  it("leaves tenant B's resources as they were", async () => {
    expect(await expectOk(api('GET', `/vms/${vmB.vmId}`, undefined, tenantB))).toEqual(vmB);
    expect(await expectOk(api('GET', `/networks/${networkB.networkId}`, undefined, tenantB))).toEqual(networkB);
    expect(await expectOk(api('GET', `/service-accounts/${accountB.serviceAccountId}`, undefined, tenantB))).toEqual(accountB);
    expect(await expectOk(api('GET', `/disks/${diskB.diskId}`, undefined, tenantB))).toEqual(diskB);
    expect(await expectOk(api('GET', `/images/${imageB.imageId}`, undefined, tenantB))).toEqual({ ...imageB, copies: [] });
    expect(await expectOk(api('GET', `/shuffle-jobs/${jobB.jobId}`, undefined, tenantB))).toMatchObject({ state: 'running', recordsOut: 0 });
    expect((await expectOk(api('GET', `/projects/${networkB.projectId}`, undefined, tenantB))).state).toBe('active');
    expect((await expectOk(api('GET', `/vms/${vmA.vmId}`, undefined, tenantA))).serviceAccountId).toBeUndefined();
    const { vms } = await expectOk(api('GET', `/vms?networkId=${networkB.networkId}`, undefined, tenantB));
    expect(vms.map((vm: any) => vm.vmId)).toEqual([vmB.vmId]);
  });

  it('covers every route of the API', () => {
    expect(Object.keys(attempts).sort()).toEqual([...inject('routes')].sort());
  });
});
