import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HostMessage, HostMessageBatch } from '../../events/endpoints.ts';
import { api, createVmOn, migrateVmTo, expectOk, uniqueId } from '../helpers/api.ts';
import { operatorToken } from '../helpers/tokens.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';

/**
 * After a VM has moved back and forth, every endpoint message it ever caused is replayed into the
 * agents' queues, duplicated and shuffled, with stale leaves mixed in. No agent may go back.
 */
describe('duplicated and reordered endpoint messages', () => {
  let agents: RunningAgent[];
  let networkId: string;
  let sqs: SQSClient;

  beforeAll(async () => {
    sqs = new SQSClient(localAwsConfig());
    agents = await Promise.all([1, 2].map((i) => startAgent(uniqueId(`replay${i}`), `198.51.100.${20 + i}`)));
    networkId = (await expectOk(api('POST', '/networks', { name: 'replay', cidr: '10.30.0.0/24' }), 201)).networkId;
  });

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
  });

  it('never moves an agent back to an older endpoint', async () => {
    const [h1, h2] = agents as [RunningAgent, RunningAgent];
    const hostIds = [h1.hostId, h2.hostId];
    // Keep one VM on each host so both stay members of the network throughout.
    await expectOk(createVmOn({ name: 'anchor-1', networkId, hostId: h1.hostId }), 201);
    await expectOk(createVmOn({ name: 'anchor-2', networkId, hostId: h2.hostId }), 201);
    const vm = await expectOk(createVmOn({ name: 'mover', networkId, hostId: h1.hostId }), 201);

    const history = [vm];
    for (let i = 0; i < 5; i++) {
      history.push(await expectOk(migrateVmTo(vm.vmId, hostIds[(i + 1) % 2]!)));
    }
    const latest = history.at(-1)!;
    expect(latest.endpoint.version).toBe(6);
    await eventually(async () => {
      for (const agent of agents) {
        expect((await agent.status()).networks[networkId]?.entries[vm.ip]).toMatchObject({ version: 6, endpoint: latest.endpoint.address });
      }
    });

    const hosts = (await expectOk(api('GET', '/hosts', undefined, operatorToken()))).hosts as { hostId: string; queueUrl: string }[];
    const before = await Promise.all(agents.map((agent) => agent.status()));
    const sentBodies: number[] = [];
    for (const [index, agent] of agents.entries()) {
      const epoch = before[index]!.networks[networkId]!.epoch;
      const stale: HostMessage[] = history.map((state) => ({
        kind: 'endpoints',
        networkId,
        epoch,
        snapshot: false,
        entries: [{ ip: vm.ip, version: state.endpoint.version, state: 'active', vmId: vm.vmId, hostId: state.hostId, endpoint: state.endpoint.address }],
      }));
      // A leave from before the host's current epoch must not drop the network.
      stale.push({ kind: 'leave', networkId, epoch: 1 });
      const bodies = shuffle([...stale, ...stale, ...stale]).map((message): HostMessageBatch => ({ messages: [message] }));
      const queueUrl = hosts.find((host) => host.hostId === agent.hostId)!.queueUrl;
      await Promise.all(bodies.map((body) => sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }))));
      sentBodies.push(bodies.length);
    }

    // Sample while the replay is consumed: the version seen must never decrease.
    const seen = agents.map(() => [] as number[]);
    await eventually(
      async () => {
        const statuses = await Promise.all(agents.map((agent) => agent.status()));
        for (const [index, status] of statuses.entries()) {
          seen[index]!.push(status.networks[networkId]?.entries[vm.ip]?.version ?? 0);
          expect(status.stats.messagesReceived - before[index]!.stats.messagesReceived).toBeGreaterThanOrEqual(sentBodies[index]!);
        }
      },
      30_000,
      20,
    );

    for (const [index, agent] of agents.entries()) {
      expect(seen[index]!.every((version) => version === 6)).toBe(true);
      const status = await agent.status();
      expect(status.networks[networkId]).toMatchObject({ member: true });
      expect(status.networks[networkId]!.entries[vm.ip]).toMatchObject({ version: 6, endpoint: latest.endpoint.address });
      // Every replayed entry and leave was received and judged stale.
      expect(status.stats.entriesStale - before[index]!.stats.entriesStale).toBeGreaterThanOrEqual(sentBodies[index]!);
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: hosts.find((host) => host.hostId === agent.hostId)!.queueUrl,
          AttributeNames: ['ApproximateNumberOfMessages'],
        }),
      );
      expect(Number(Attributes?.ApproximateNumberOfMessages)).toBe(0);
    }
  });
});

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
