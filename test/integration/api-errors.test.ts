import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { deploymentFromEnvironment, metadataTableName } from '#events/naming.ts';
import { keys } from '#functions/core/table-keys.ts';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';
import { operatorToken } from '../helpers/tokens.ts';

describe('API input errors', () => {
  let networkId: string;
  let hostId: string;
  let vmId: string;
  const region = inject('region');
  const documents = DynamoDBDocumentClient.from(new DynamoDBClient(localAwsConfig()));
  /** A host that only holds an address: it says it runs no VMs, so placement never puts other files' VMs there. */
  const registerAt = (id: string, address: string) => api('POST', '/hosts', { hostId: id, address, capacity: 1, vmRuntime: 'none' }, operatorToken());
  const takenMessage = (address: string, holder: string) =>
    `address: ${address} is already the address of host ${holder} in ${region}; each host needs an underlay address of its own`;

  beforeAll(async () => {
    hostId = uniqueId('errors');
    await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.80', capacity: 4 }, operatorToken()), 201);
    await keepAlive(hostId);
    networkId = (await expectOk(api('POST', '/networks', { name: 'errors', cidr: '10.60.0.0/24' }), 201)).networkId;
    vmId = (await expectOk(createVmOn({ name: 'vm', networkId, hostId }), 201)).vmId;
  });

  it.each([
    ['POST', '/networks', { name: 'x', cidr: '10.0.0.0/33' }, /body\.cidr: /],
    ['POST', '/networks', { name: 'x', cidr: '10.0.0.0/8' }, /body\.cidr: prefix length must be between \/16 and \/28/],
    ['POST', '/networks', { cidr: '10.0.0.0/24' }, /body\.name: /],
    ['POST', '/networks', { name: 'x', cidr: '10.0.0.0/24', color: 'red' }, /body: unknown field\(s\) color/],
    ['POST', '/networks', '{not json', /body: is not valid JSON/],
    ['POST', '/vms', { name: 'x', networkId: 'NOT VALID' }, /body\.networkId: /],
    ['POST', '/hosts', { hostId: 'h', address: '300.1.1.1', capacity: 1 }, /body\.address: /],
    ['POST', '/hosts', { hostId: 'h', address: '10.0.0.1', capacity: 0 }, /body\.capacity: /],
    ['GET', '/networks?limit=1000', undefined, /query\.limit: /],
    ['GET', '/networks?nextToken=garbage', undefined, /nextToken: is not a token this API returned/],
  ])('%s %s %j → 400 naming the field', async (method, path, body, message) => {
    const response = await api(method, path, body, path.startsWith('/hosts') ? operatorToken() : undefined);
    expect(response.status).toBe(400);
    expect(response.body.message).toMatch(message);
  });

  it.each([
    ['GET', '/vms/vm-doesnotexist', undefined, 'vm vm-doesnotexist not found'],
    ['GET', '/networks/net-doesnotexist', undefined, 'network net-doesnotexist not found'],
    ['DELETE', '/vms/vm-doesnotexist', undefined, 'vm vm-doesnotexist not found'],
    ['POST', '/vms', { name: 'x', networkId: 'net-doesnotexist' }, 'network net-doesnotexist not found'],
    ['GET', '/hosts/nohost/forwarding-table', undefined, 'host nohost not found'],
  ])('%s %s → 404', async (method, path, body, message) => {
    const response = await api(method, path, body, path.startsWith('/hosts') ? operatorToken() : undefined);
    expect(response.status).toBe(404);
    expect(response.body.message).toBe(message);
  });

  it('answers 404 for migration to an unknown host and 409 to the current one', async () => {
    const unknown = await migrateVmTo(vmId, 'nohost');
    expect(unknown).toEqual({ status: 404, body: { message: 'host nohost not found' } });
    const same = await migrateVmTo(vmId, hostId);
    expect(same).toEqual({ status: 409, body: { message: expect.stringMatching(/already runs on host/) } });
  });

  it('refuses re-registering a host at another address, and accepts the same registration again', async () => {
    expect((await api('POST', '/hosts', { hostId, address: '198.51.100.80', capacity: 4 }, operatorToken())).status).toBe(200);
    const moved = await api('POST', '/hosts', { hostId, address: '198.51.100.81', capacity: 4 }, operatorToken());
    expect(moved.status).toBe(409);
    expect(moved.body.message).toMatch(/^address: host .* is already registered at 198\.51\.100\.80$/);
    // The refused move took nothing: the address it asked for is free for another host.
    await expectOk(registerAt(uniqueId('errors-next'), '198.51.100.81'), 201);
  });

  it.each([
    ['0.0.0.0', 'unspecified (0.0.0.0/8)'],
    ['0.1.2.3', 'unspecified (0.0.0.0/8)'],
    ['127.0.0.1', 'loopback (127.0.0.0/8)'],
    ['224.0.0.1', 'multicast (224.0.0.0/4)'],
    ['240.0.0.1', 'reserved (240.0.0.0/4)'],
    ['255.255.255.255', 'broadcast (255.255.255.255/32)'],
  ])('refuses to register a host at %s, %s: 400 naming the field and the rule', async (address, what) => {
    expect(await registerAt(uniqueId('errors-cast'), address)).toEqual({
      status: 400,
      body: { message: `body.address: must be a unicast address other hosts can reach: ${address} is ${what}` },
    });
  });

  it('refuses a second host at an address another host has, with 409 naming that host; that host registering again is a no-op', async () => {
    const other = uniqueId('errors-dup');
    expect(await registerAt(other, '198.51.100.80')).toEqual({ status: 409, body: { message: takenMessage('198.51.100.80', hostId) } });
    // The host that has it registers again, as its agent does on every start.
    expect(await expectOk(api('POST', '/hosts', { hostId, address: '198.51.100.80', capacity: 4 }, operatorToken()))).toMatchObject({
      hostId,
      address: '198.51.100.80',
    });
    // Nothing of the refused host was kept: it registers at an address of its own (a move would be refused).
    await expectOk(registerAt(other, '198.51.100.82'), 201);
  });

  it('lets exactly one of several hosts racing for one address have it; the others get 409 naming it', async () => {
    const racers = [1, 2, 3, 4].map((i) => uniqueId(`errors-race${i}`));
    const answers = await Promise.all(racers.map((racer) => registerAt(racer, '198.51.100.83')));
    expect(answers.map((answer) => answer.status).sort()).toEqual([201, 409, 409, 409]);
    const winner = racers[answers.findIndex((answer) => answer.status === 201)]!;
    for (const answer of answers.filter(({ status }) => status === 409)) expect(answer.body).toEqual({ message: takenMessage('198.51.100.83', winner) });
  });

  it('has a host registered before addresses were held claim its own when it registers again; of two hosts at one address then, the one that registers first keeps it', async () => {
    const address = '198.51.100.84';
    const [first, second] = [uniqueId('errors-old1'), uniqueId('errors-old2')];
    // As the table was before: the host, and no item saying the address is its.
    const forgetHolder = () =>
      documents.send(new DeleteCommand({ TableName: metadataTableName(deploymentFromEnvironment()), Key: keys.hostAddress(region, address) }));
    await expectOk(registerAt(first, address), 201);
    await forgetHolder();
    await expectOk(registerAt(first, address));
    expect(await registerAt(uniqueId('errors-new'), address)).toEqual({ status: 409, body: { message: takenMessage(address, first) } });
    // Two hosts at one address, as could be before: the one that registers first (here a new one) keeps it, the other is refused.
    await forgetHolder();
    await expectOk(registerAt(second, address), 201);
    expect(await registerAt(first, address)).toEqual({ status: 409, body: { message: takenMessage(address, second) } });
  });

  it('answers unknown routes with a 404, as the API Gateway response for them says', async () => {
    const response = await api('GET', '/nothing-here');
    expect(response.status).toBe(404);
    expect(response.body.message).toBe('no route for this method and path; GET /openapi.json lists them');
  });

  it('pages through networks with nextToken', async () => {
    await expectOk(api('POST', '/networks', { name: 'second', cidr: '10.61.0.0/24' }), 201);
    const first = await expectOk(api('GET', '/networks?limit=1'));
    expect(first.networks).toHaveLength(1);
    expect(first.nextToken).toBeTypeOf('string');
    const second = await expectOk(api('GET', `/networks?limit=1&nextToken=${first.nextToken}`));
    expect(second.networks[0].networkId).not.toBe(first.networks[0].networkId);
  });
});
