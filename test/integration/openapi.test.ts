import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { openApiDocument } from '#events/openapi.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { openSshPublicKey } from '../helpers/ssh-keys.ts';
import { operatorToken, tenantToken, tokenFor } from '../helpers/tokens.ts';

describe('the OpenAPI description', () => {
  it('is served to every kind of caller, exactly as generated from the schemas', async () => {
    const expected = JSON.parse(JSON.stringify(openApiDocument()));
    for (const token of [tenantToken(), tokenFor('tenant', 'openapi-reader', ['tenant:read']), operatorToken(), tokenFor('host', 'openapi-host')]) {
      expect(await expectOk(api('GET', '/openapi.json', undefined, token))).toEqual(expected);
    }
  });

  it('names exactly the routes the deployed API has', async () => {
    const document = await expectOk(api('GET', '/openapi.json'));
    const described = Object.entries(document.paths as Record<string, object>).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    expect(described.sort()).toEqual([...inject('routes')].sort());
  });

  it('is served only with a bearer token, like every route', async () => {
    const response = await fetch(`${inject('apiUrl')}/openapi.json`);
    expect(response.status).toBe(401);
  });

  // Every answer `api` sees is checked against the description; these are the answers that
  // other tests only see through a host agent's own client, or not at all.
  it('answers host routes, re-registrations and deletes as described', async () => {
    const hostId = uniqueId('described');
    const host = tokenFor('host', hostId);
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.234', capacity: 4 }, operatorToken()), 201);
    await keepAlive(hostId);
    const network = await expectOk(api('POST', '/networks', { name: 'described', cidr: '10.93.0.0/24' }), 201);
    const vm = await expectOk(createVmOn({ name: 'described', networkId: network.networkId, hostId }), 201);
    const account = await expectOk(api('POST', '/service-accounts', { name: 'described' }), 201);
    await expectOk(api('PUT', `/vms/${vm.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));

    const key = openSshPublicKey(generateKeyPairSync('ed25519').publicKey, 'root@described');
    expect((await expectOk(api('PUT', `/hosts/${hostId}/vms/${vm.vmId}/host-keys`, { keys: [key] }, host))).keys).toHaveLength(1);
    const { x, y } = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    const { credentials } = await expectOk(api('POST', `/hosts/${hostId}/service-account-credentials`, { publicKey: { kty: 'EC', crv: 'P-256', x, y } }, host));
    expect(credentials.map((credential: any) => credential.vmIds)).toEqual([[vm.vmId]]);
    const job = await expectOk(api('POST', '/shuffle-jobs', { name: 'described', workerVmIds: [vm.vmId] }), 201);
    const configs = await expectOk(api('GET', `/hosts/${hostId}/vm-configs`, undefined, host));
    expect(configs.shuffleJobs.map((shuffle: any) => shuffle.jobId)).toEqual([job.jobId]);
    expect(configs.pairKeys.map((pair: any) => pair.vmId)).toEqual([vm.vmId]);
    expect(configs.vms.map((config: any) => config.serviceAccountId)).toEqual([account.serviceAccountId]);
    const reported = await expectOk(api('PUT', `/hosts/${hostId}/shuffle-jobs/${job.jobId}/workers/${vm.vmId}`, { received: 0, sent: 0, closed: true }, host));
    expect(reported).toMatchObject({ state: 'complete', recordsIn: 0, recordsOut: 0 });
    expect((await api('DELETE', `/shuffle-jobs/${job.jobId}`)).status).toBe(204);

    const pool = { poolId: uniqueId('described'), capacityGiB: 100, iops: 10_000, throughputMiBps: 500 };
    await expectOk(api('POST', '/storage-pools', pool, operatorToken()), 201);
    expect(await expectOk(api('POST', '/storage-pools', pool, operatorToken()))).toMatchObject({ ...pool, freeGiB: 100 });

    await expectOk(api('DELETE', `/vms/${vm.vmId}/service-account`));
    expect((await api('DELETE', `/vms/${vm.vmId}`)).status).toBe(204);
    expect((await api('DELETE', `/service-accounts/${account.serviceAccountId}`)).status).toBe(204);
    expect((await api('DELETE', `/networks/${network.networkId}`)).status).toBe(204);
  });
});
