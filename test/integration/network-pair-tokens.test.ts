import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { pairKeyContext } from '#events/tokens.ts';
import { issuePairToken } from '#tokens/pair-tokens.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';
import { operatorToken, tokenFor } from '../helpers/tokens.ts';

/** What a destination host's data plane asks its agent before admitting a flow. */
async function verifyAt(agent: RunningAgent, destinationVmId: string, token: string) {
  return agent.control('POST', '/connections/verify', { destinationVmId, token });
}

describe('network-pair tokens', () => {
  let h1: RunningAgent;
  let h2: RunningAgent;
  let netA: string;
  let netB: string;
  const vms: Record<string, any> = {};

  beforeAll(async () => {
    [h1, h2] = await Promise.all([startAgent(uniqueId('pair1'), '198.51.100.181'), startAgent(uniqueId('pair2'), '198.51.100.182')]);
    const afterAgentsFirstSecond = new Promise((resolve) => setTimeout(resolve, 1_100));
    netA = (await expectOk(api('POST', '/networks', { name: 'pair-a', cidr: '10.81.0.0/24' }), 201)).networkId;
    netB = (await expectOk(api('POST', '/networks', { name: 'pair-b', cidr: '10.82.0.0/24' }), 201)).networkId;
    for (const [name, networkId, host] of [
      ['a1', netA, h1],
      ['a2', netA, h2],
      ['b1', netB, h2],
    ] as const) {
      vms[name] = await expectOk(createVmOn({ name, networkId, hostId: host.hostId }), 201);
    }
    // A first start keeps no record of used tokens, so an agent refuses tokens issued before it
    // started, and iat is in whole seconds: one minted in its first second is refused too
    // (used-tokens.ts). The tests' tokens are minted after that second.
    await afterAgentsFirstSecond;
  });

  afterAll(async () => {
    await Promise.all([h1, h2].filter(Boolean).map((agent) => agent.process.stop()));
  });

  const connect = (from: string, to: string, token?: Promise<string>) =>
    api('POST', `/vms/${vms[from].vmId}/connections`, { destinationVmId: vms[to].vmId }, token);

  it('authorises a pair in one network and hands out the endpoint and a token the destination host accepts', async () => {
    const connection = await expectOk(connect('a1', 'a2'));
    expect(Object.keys(connection).sort()).toEqual(['destinationHostAddress', 'destinationIp', 'destinationVmId', 'expiresAt', 'sourceVmId', 'token']);
    expect(connection).toMatchObject({ destinationHostAddress: h2.address, destinationIp: vms.a2.ip });
    await eventually(async () => {
      expect(await verifyAt(h2, vms.a2.vmId, connection.token)).toEqual({
        status: 200,
        body: { accepted: true, sourceVmId: vms.a1.vmId, sourceIp: vms.a1.ip },
      });
    });
    // Replayed, the same token admits nothing more; a new one does.
    expect(await verifyAt(h2, vms.a2.vmId, connection.token)).toEqual({
      status: 403,
      body: { accepted: false, reason: 'token already used: a pair token admits one flow' },
    });
    expect((await verifyAt(h2, vms.a2.vmId, (await expectOk(connect('a1', 'a2'))).token)).body.accepted).toBe(true);
  });

  it('refuses pairs across networks until the tenant allows the source network, in that direction only', async () => {
    const refused = await connect('a1', 'b1');
    expect(refused.status).toBe(403);
    expect(refused.body.message).toMatch(/is not an allowed source/);

    await expectOk(api('PUT', `/networks/${netB}/allowed-sources/${netA}`));
    expect((await expectOk(api('GET', `/networks/${netB}/allowed-sources`))).allowedSources).toMatchObject([{ networkId: netB, sourceNetworkId: netA }]);
    const allowed = await expectOk(connect('a1', 'b1'));
    await eventually(async () => expect((await verifyAt(h2, vms.b1.vmId, allowed.token)).body.accepted).toBe(true));
    expect((await connect('b1', 'a1')).status).toBe(403);

    expect((await api('DELETE', `/networks/${netB}/allowed-sources/${netA}`)).status).toBe(204);
    expect((await connect('a1', 'b1')).status).toBe(403);
  });

  it('refuses a pair between networks whose address ranges overlap, even when allowed: no route could tell them apart', async () => {
    const overlapping = (await expectOk(api('POST', '/networks', { name: 'pair-overlap', cidr: '10.82.0.0/16' }), 201)).networkId;
    await expectOk(api('PUT', `/networks/${netB}/allowed-sources/${overlapping}`));
    const vm = await expectOk(createVmOn({ name: 'o1', networkId: overlapping, hostId: h1.hostId }), 201);
    const refused = await api('POST', `/vms/${vm.vmId}/connections`, { destinationVmId: vms.b1.vmId });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toMatch(/overlap/);
  });

  it('refuses forged tokens and tokens issued for another destination', async () => {
    const { token } = await expectOk(connect('a1', 'a2'));
    const [payload, mac] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
    const forged = `${Buffer.from(JSON.stringify({ ...claims, src: vms.b1.vmId })).toString('base64url')}.${mac}`;
    expect(await verifyAt(h2, vms.a2.vmId, forged)).toEqual({ status: 403, body: { accepted: false, reason: 'bad MAC' } });
    expect(await verifyAt(h2, vms.b1.vmId, token)).toEqual({ status: 403, body: { accepted: false, reason: 'bad MAC' } });
    expect((await verifyAt(h1, vms.a2.vmId, token)).body).toEqual({ accepted: false, reason: `vm ${vms.a2.vmId} does not run on this host` });
  });

  it("hands each host the wrapped pair secrets of the VMs it runs and no other's; another host's configurations are refused", async () => {
    const pairKeysOf = async (agent: RunningAgent) =>
      (await expectOk(api('GET', `/hosts/${agent.hostId}/vm-configs`, undefined, tokenFor('host', agent.hostId)))).pairKeys.map((key: any) => key.vmId).sort();
    // What the control plane says each host runs: the tests' VMs and those the tests before made there.
    const onHost = async (agent: RunningAgent) =>
      (await expectOk(api('GET', `/vms?hostId=${agent.hostId}&limit=100`, undefined, operatorToken()))).vms.map((vm: any) => vm.vmId).sort();
    expect(await pairKeysOf(h1)).toEqual(await onHost(h1));
    expect(await pairKeysOf(h2)).toEqual(await onHost(h2));
    expect(await pairKeysOf(h1)).toContain(vms.a1.vmId);
    expect(await pairKeysOf(h2)).not.toContain(vms.a1.vmId);
    const asOtherHost = await api('GET', `/hosts/${h1.hostId}/vm-configs`, undefined, tokenFor('host', h2.hostId));
    expect(asOtherHost.status).toBe(403);
  });

  it('lets the host running the source ask on its behalf, and no other host', async () => {
    expect((await connect('a1', 'a2', tokenFor('host', h1.hostId))).status).toBe(200);
    const other = await connect('a1', 'a2', tokenFor('host', h2.hostId));
    expect(other.status).toBe(403);
  });

  it('binds tokens to the destination host: after a migration old tokens fail and new ones point at the new host', async () => {
    const before = await expectOk(connect('a1', 'a2'));
    await expectOk(migrateVmTo(vms.a2.vmId, h1.hostId));
    const after = await expectOk(connect('a1', 'a2'));
    expect(after.destinationHostAddress).toBe(h1.address);
    await eventually(async () => expect((await verifyAt(h1, vms.a2.vmId, after.token)).body.accepted).toBe(true));
    // Keyed by the secret the VM had before it moved (a migration rotates it), and issued for the old host.
    expect((await verifyAt(h1, vms.a2.vmId, before.token)).body).toEqual({ accepted: false, reason: 'bad MAC' });
    await eventually(async () => expect((await verifyAt(h2, vms.a2.vmId, after.token)).body.reason).toMatch(/does not run on this host/));
  });

  it('gives a VM a new pair secret when it migrates: a token made with the old one is refused at its new host', async () => {
    // What the VM's current host holds: the pair secret, unwrapped with KMS under the VM's context.
    const tableName = Object.entries(inject('resources')).find(([id]) => id.startsWith('Metadata'))![1];
    const secretOf = async (vmId: string) => {
      const { Item } = await new DynamoDBClient(localAwsConfig()).send(
        new GetItemCommand({ TableName: tableName, Key: { pk: { S: `VM#${vmId}` }, sk: { S: 'VM' } }, ConsistentRead: true }),
      );
      const { Plaintext } = await new KMSClient(localAwsConfig()).send(
        new DecryptCommand({ CiphertextBlob: Buffer.from(Item!.pairKeyCiphertext!.S!, 'base64'), EncryptionContext: pairKeyContext(vmId) }),
      );
      return Buffer.from(Plaintext!);
    };
    const destination = vms.a2.vmId;
    const from = (await expectOk(api('GET', `/vms/${destination}`))).hostId;
    const [oldHost, newHost] = from === h1.hostId ? [h1, h2] : [h2, h1];
    const oldSecret = await secretOf(destination);
    const before = await expectOk(connect('a1', 'a2'));
    await eventually(async () => expect((await verifyAt(oldHost, destination, before.token)).body.accepted).toBe(true));

    await expectOk(migrateVmTo(destination, newHost.hostId));
    expect((await secretOf(destination)).equals(oldSecret)).toBe(false);
    const issued = await expectOk(connect('a1', 'a2'));
    await eventually(async () => expect((await verifyAt(newHost, destination, issued.token)).body.accepted).toBe(true));
    // The old host knew the old secret: a token it makes for the VM at its new address is refused.
    const forged = issuePairToken(oldSecret, { src: vms.a1.vmId, srcIp: vms.a1.ip, dst: destination, dstIp: vms.a2.ip, dstHost: newHost.address }).token;
    expect(await verifyAt(newHost, destination, forged)).toEqual({ status: 403, body: { accepted: false, reason: 'bad MAC' } });
  });
});
