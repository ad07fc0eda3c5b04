import { beforeAll, describe, expect, it } from 'vitest';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

/** A create sent again with its clientToken (after a timeout, a lost answer) makes nothing twice. */
describe('idempotent creates', () => {
  const tenantId = uniqueId('tokens');
  const tenant = tenantToken(tenantId);
  const as = (method: string, path: string, body?: unknown) => api(method, path, body, tenant);
  const hostId = uniqueId('tokens-host');
  const hostLoad = async () =>
    ((await expectOk(api('GET', '/hosts', undefined, operatorToken()))).hosts as any[]).find((host) => host.hostId === hostId).vmCount;
  let networkId: string;

  beforeAll(async () => {
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.76', capacity: 20 }, operatorToken()), 201);
    await keepAlive(hostId);
    networkId = (await expectOk(as('POST', '/networks', { name: 'tokens', cidr: '10.71.0.0/24', clientToken: 'net-1' }), 201)).networkId;
  });

  it('answers a repeated network create with the network the first one made', async () => {
    const again = await expectOk(as('POST', '/networks', { name: 'tokens', cidr: '10.71.0.0/24', clientToken: 'net-1' }), 201);
    expect(again.networkId).toBe(networkId);
    expect((await expectOk(as('GET', '/networks'))).networks.filter((network: any) => network.name === 'tokens')).toHaveLength(1);
  });

  it('makes one VM, one address and one host place for many concurrent creates with one token', async () => {
    const body = { name: 'once', networkId, hostId, clientToken: 'vm-once' };
    const answers = await Promise.all(Array.from({ length: 6 }, () => expectOk(createVmOn(body, tenantId), 201)));
    expect(new Set(answers.map((vm) => vm.vmId)).size).toBe(1);
    expect(new Set(answers.map((vm) => vm.ip)).size).toBe(1);
    const vms = (await expectOk(as('GET', `/vms?networkId=${networkId}`))).vms;
    expect(vms.filter((vm: any) => vm.name === 'once')).toHaveLength(1);
    expect(await hostLoad()).toBe(1);

    // Later, too: the same answer, nothing more taken.
    expect((await expectOk(createVmOn(body, tenantId), 201)).vmId).toBe(answers[0]!.vmId);
    expect(await hostLoad()).toBe(1);
  });

  it('refuses a token reused for a different request, naming what it made', async () => {
    const first = await expectOk(createVmOn({ name: 'a', networkId, hostId, clientToken: 'vm-reused' }, tenantId), 201);
    const reused = await createVmOn({ name: 'b', networkId, hostId, clientToken: 'vm-reused' }, tenantId);
    expect(reused).toEqual({
      status: 409,
      body: { message: `clientToken: vm-reused was already used for a different request (it made ${first.vmId}); use a new token for a new request` },
    });
  });

  it('keeps tokens per tenant and per kind of create', async () => {
    const other = tenantToken(uniqueId('tokens-other'));
    const theirs = await expectOk(api('POST', '/networks', { name: 'tokens', cidr: '10.71.0.0/24', clientToken: 'net-1' }, other), 201);
    expect(theirs.networkId).not.toBe(networkId);
    const vm = await expectOk(createVmOn({ name: 'same-token', networkId, hostId, clientToken: 'net-1' }, tenantId), 201);
    expect(vm.vmId).toMatch(/^vm-/);
  });

  it('says when what the token made has since been deleted', async () => {
    const vm = await expectOk(createVmOn({ name: 'gone', networkId, hostId, clientToken: 'vm-gone' }, tenantId), 201);
    await expectOk(as('DELETE', `/vms/${vm.vmId}`), 204);
    const again = await createVmOn({ name: 'gone', networkId, hostId, clientToken: 'vm-gone' }, tenantId);
    expect(again).toEqual({
      status: 409,
      body: { message: `clientToken: vm-gone already made ${vm.vmId}, which has since been deleted; use a new token for a new request` },
    });
  });

  it('names a malformed token', async () => {
    const bad = await as('POST', '/vms', { name: 'x', networkId, clientToken: 'has space' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^body\.clientToken: must be 1-64 letters/);
  });
});
