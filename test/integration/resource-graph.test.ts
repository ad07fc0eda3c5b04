import { DynamoDBClient, QueryCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { GraphMessage } from '#events/projects.ts';
import type { OutgoingGraphMessage } from '#events/projects.ts';
import { handleGraphMessage } from '#functions/lifecycle/resource-graph.ts';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { eventually } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, uniqueId } from '../helpers/api.ts';
import { keepAlive } from '../helpers/heartbeats.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

describe('resource graph', () => {
  const tenantId = uniqueId('graph');
  const tenant = tenantToken(tenantId);
  const as = (method: string, path: string, body?: unknown) => api(method, path, body, tenant);
  const hostIds = [uniqueId('graph1'), uniqueId('graph2')];
  const poolId = uniqueId('graph-pool');
  // Just what these tests need: other files count the room left in every pool.
  const pool = { poolId, capacityGiB: 200, iops: 40_000, throughputMiBps: 2_000 };

  const hostLoad = async () =>
    Object.fromEntries(
      ((await expectOk(api('GET', '/hosts', undefined, operatorToken()))).hosts as any[])
        .filter((h) => hostIds.includes(h.hostId))
        .map((h) => [h.hostId, h.vmCount]),
    );
  const poolFree = async () => {
    const found = ((await expectOk(api('GET', '/storage-pools', undefined, operatorToken()))).storagePools as any[]).find((p) => p.poolId === poolId);
    return { freeGiB: found.freeGiB, freeIops: found.freeIops, freeThroughputMiBps: found.freeThroughputMiBps };
  };

  // Straight from the table: the API is down while the runner is.
  const dynamodb = new DynamoDBClient(localAwsConfig());
  const tableName = Object.entries(inject('resources')).find(([id]) => id.startsWith('Metadata'))![1];
  const nodesInIndex = async (projectId: string) =>
    (
      await dynamodb.send(
        new QueryCommand({
          TableName: tableName,
          IndexName: 'gsi4',
          KeyConditionExpression: 'gsi4pk = :pk',
          ExpressionAttributeValues: { ':pk': { S: `PROJECT#${projectId}#NODES` } },
          Select: 'COUNT',
        }),
      )
    ).Count!;

  /** A project with two networks, VMs on both hosts, disks (some attached) and a service account on one VM. */
  async function buildProject(vmCount: number) {
    const project = await expectOk(as('POST', '/projects', { name: 'shop' }), 201);
    const { projectId } = project;
    const networks = [
      await expectOk(as('POST', '/networks', { name: 'front', cidr: '10.84.0.0/24', projectId }), 201),
      await expectOk(as('POST', '/networks', { name: 'back', cidr: '10.85.0.0/24', projectId }), 201),
    ];
    const vms = [];
    for (let i = 0; i < vmCount; i++) {
      vms.push(await expectOk(createVmOn({ name: `vm-${i}`, networkId: networks[i % 2]!.networkId, hostId: hostIds[i % 2]! }, tenantId), 201));
    }
    const disks = [];
    for (let i = 0; i < Math.ceil(vmCount / 2); i++) {
      const disk = await expectOk(as('POST', '/disks', { name: `disk-${i}`, sizeGiB: 20, iops: 4000, throughputMiBps: 200, projectId }), 201);
      if (i % 2 === 0) await expectOk(as('POST', `/disks/${disk.diskId}/attach`, { vmId: vms[i]!.vmId }));
      disks.push(disk);
    }
    const account = await expectOk(as('POST', '/service-accounts', { name: 'robot', projectId }), 201);
    await expectOk(as('PUT', `/vms/${vms[0]!.vmId}/service-account`, { serviceAccountId: account.serviceAccountId }));
    return { projectId, networks, vms, disks, account };
  }

  beforeAll(async () => {
    for (const [i, hostId] of hostIds.entries()) {
      await expectOk(api('POST', '/hosts', { hostId, address: `198.51.100.${200 + i}`, capacity: 64 }, operatorToken()), 201);
    }
    await keepAlive(...hostIds);
    await expectOk(api('POST', '/storage-pools', pool, operatorToken()), 201);
  });

  it('shows a project as nodes it owns and what its VMs use, and refuses deleting what is in use, naming the users', async () => {
    const { projectId, networks, vms, disks, account } = await buildProject(4);
    const graph = await expectOk(as('GET', `/projects/${projectId}/graph`));
    expect(graph.nodes).toHaveLength(1 + 2 + 4 + 2 + 1);
    expect(graph.edges.filter((edge: any) => edge.kind === 'owns')).toHaveLength(2 + 4 + 2 + 1);
    expect(graph.edges).toContainEqual({ from: vms[0]!.vmId, to: networks[0].networkId, kind: 'uses' });
    expect(graph.edges).toContainEqual({ from: vms[0]!.vmId, to: disks[0].diskId, kind: 'uses' });
    expect(graph.edges).toContainEqual({ from: vms[0]!.vmId, to: account.serviceAccountId, kind: 'uses' });

    const front = networks[0];
    const frontVms = vms
      .filter((vm: any) => vm.networkId === front.networkId)
      .map((vm: any) => vm.vmId)
      .sort();
    expect(await as('DELETE', `/networks/${front.networkId}`)).toEqual({
      status: 409,
      body: { message: `network ${front.networkId} is in use by vm ${frontVms.join(', vm ')}` },
    });
    expect(await as('DELETE', `/service-accounts/${account.serviceAccountId}`)).toEqual({
      status: 409,
      body: { message: `service account ${account.serviceAccountId} is in use by vm ${vms[0]!.vmId}` },
    });
    // Nothing crosses projects: a disk of another project cannot be attached here.
    const other = await expectOk(as('POST', '/projects', { name: 'other' }), 201);
    const foreignDisk = await expectOk(as('POST', '/disks', { name: 'foreign', sizeGiB: 10, projectId: other.projectId }), 201);
    expect((await as('POST', `/disks/${foreignDisk.diskId}/attach`, { vmId: vms[1]!.vmId })).status).toBe(409);
  });

  it('deletes a project with everything beneath it exactly once, also when the runner is killed halfway', async () => {
    const loadBefore = await hostLoad();
    const freeBefore = await poolFree();
    const { projectId, networks, vms, disks, account } = await buildProject(12);
    expect(await hostLoad()).not.toEqual(loadBefore);

    expect(await expectOk(as('DELETE', `/projects/${projectId}`), 202)).toMatchObject({ projectId, state: 'deleting' });
    // Nothing new joins a project being deleted.
    expect((await as('POST', '/networks', { name: 'late', cidr: '10.86.0.0/24', projectId })).status).toBe(409);

    // Kill the functions as soon as the cascade is under way, then count what is left while nothing runs.
    const total = 2 + 12 + 6 + 1;
    await eventually(async () => expect(await nodesInIndex(projectId)).toBeLessThan(total), 30_000, 10);
    expect((await fetch(`${inject('controlUrl')}/kill-runner`, { method: 'POST' })).status).toBe(204);
    const remaining = await nodesInIndex(projectId);
    expect(remaining).toBeGreaterThan(0);
    expect(remaining).toBeLessThan(total);
    expect((await fetch(`${inject('controlUrl')}/restart-runner`, { method: 'POST' })).status).toBe(204);

    // Redelivery finishes it (in-flight messages return after the graph queue's 60 s visibility timeout).
    await eventually(async () => expect((await as('GET', `/projects/${projectId}`)).status).toBe(404), 150_000, 500);
    for (const vm of vms) expect((await as('GET', `/vms/${vm.vmId}`)).status).toBe(404);
    for (const network of networks) expect((await as('GET', `/networks/${network.networkId}`)).status).toBe(404);
    for (const disk of disks) expect((await as('GET', `/disks/${disk.diskId}`)).status).toBe(404);
    expect((await as('GET', `/service-accounts/${account.serviceAccountId}`)).status).toBe(404);
    // Released exactly once: host places and pool capacity are back to what they were, not beyond.
    expect(await hostLoad()).toEqual(loadBefore);
    expect(await poolFree()).toEqual(freeBefore);
  }, 240_000);

  it("holds a message that outruns its project's deletion to this region (replication lag), rather than dropping it", async () => {
    // As when another region hands a node over before the global table has brought the project's `deleting` here.
    const { projectId } = await expectOk(as('POST', '/projects', { name: 'lagging' }), 201);
    const message: GraphMessage = { action: 'release', kind: 'network', nodeId: uniqueId('net-gone'), projectId, region: inject('region') };
    const sent: OutgoingGraphMessage[] = [];
    const send = async (messages: OutgoingGraphMessage[]) => void sent.push(...messages);
    const markDeleting = () =>
      dynamodb.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: { pk: { S: `PROJECT#${projectId}` }, sk: { S: 'PROJECT' } },
          UpdateExpression: 'SET #state = :deleting',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':deleting': { S: 'deleting' } },
        }),
      );

    // The state arrives while the message waits: the node is handled and its project told to look again.
    const arrival = setTimeout(() => void markDeleting(), 1_000);
    await handleGraphMessage(tableName, inject('region'), message, send);
    clearTimeout(arrival);
    expect(sent).toEqual([{ message: { action: 'check', kind: 'project', nodeId: projectId, projectId }, from: message.nodeId }]);

    // A project that stays active past the wait fails the message, so SQS delivers it again later.
    const { projectId: stillActive } = await expectOk(as('POST', '/projects', { name: 'not-deleting' }), 201);
    await expect(handleGraphMessage(tableName, inject('region'), { ...message, projectId: stillActive }, send)).rejects.toThrow(
      `project ${stillActive} is active, not deleting, in this region's table after 5000 ms: replication is behind; the message will be delivered again`,
    );
    // The lagging project, empty, is removed by its own check.
    await handleGraphMessage(tableName, inject('region'), sent[0]!.message, send);
    expect((await as('GET', `/projects/${projectId}`)).status).toBe(404);
  }, 30_000);
});
