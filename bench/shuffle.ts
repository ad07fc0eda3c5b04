import { rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { startLocalStack } from '../local/local-stack.ts';
import { agentStatus } from '../host-agent/agent-control-client.ts';
import { projectRoot } from '../local/processes.ts';
import type { ApiResponse } from '#events/api-client.ts';
import { apiClient } from './api-client.ts';

/**
 * Shuffle throughput end to end: worker VMs on two hosts send records through their bridges, and
 * the clock stops when the control plane reports the job complete (every record stored at its
 * worker's host). Beside it, the ceiling: the same local SQS moving the same records in the same
 * 200-record messages, sent and received with nothing else around.
 */
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: { workers: { type: 'string', default: '4' }, records: { type: 'string', default: '25000' }, batch: { type: 'string', default: '1000' } },
});
const workerCount = Number(values.workers);
const perWorker = Number(values.records);
const batchSize = Number(values.batch);
if (!(workerCount >= 1 && workerCount <= 64) || !(perWorker >= batchSize) || !(batchSize >= 1))
  throw new Error('--workers 1-64, --batch >= 1, --records >= --batch');
const RECORDS_PER_MESSAGE = 200;
const headers = { 'metadata-flavor': 'Stratoplane' };
const value = 'v'.repeat(64);

console.error('starting the local control plane with two host agents...');
const stateDir = path.join(projectRoot, '.local-run', `bench-${process.pid}`);
const stack = await startLocalStack({ agentCount: 2, hostPrefix: 'shuffle', stateDir, log: () => {} });
try {
  const api = await apiClient(stack, 'tenant', 'bench');
  // Tenants do not pick hosts: the bench pins VMs as the operator, for its tenant.
  const operator = await apiClient(stack, 'operator', 'bench');
  const { networkId } = await api.createNetwork({ body: { name: 'shuffle', cidr: '10.211.0.0/24' } });
  const workers = [];
  for (let i = 0; i < workerCount; i++) {
    const agent = stack.agents[i % stack.agents.length]!;
    workers.push({ agent, vmId: (await operator.createVm({ body: { name: `w${i}`, networkId, hostId: agent.hostId, tenantId: 'bench' } })).vmId });
  }
  const job = await api.createShuffleJob({ body: { name: 'bench', workerVmIds: workers.map((worker) => worker.vmId) } });
  const urls = await Promise.all(
    workers.map(async (worker) => {
      for (let waited = 0; waited < 30_000; waited += 100) {
        const metadataUrl = (await agentStatus(worker.agent.controlSocket)).vms[worker.vmId]?.metadataUrl;
        if (metadataUrl && (await fetch(`${metadataUrl}/stratoplane/v1/shuffle/${job.jobId}/records`, { headers })).status === 200)
          return `${metadataUrl}/stratoplane/v1/shuffle/${job.jobId}`;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`the host of ${worker.vmId} did not hear of the job within 30 s`);
    }),
  );

  const total = workerCount * perWorker;
  const started = performance.now();
  await Promise.all(
    urls.map(async (url, index) => {
      for (let batch = 0; batch * batchSize < perWorker; batch++) {
        const lines = Array.from({ length: batchSize }, (_, i) =>
          JSON.stringify({ key: `key-${(index * perWorker + batch * batchSize + i) % 10_007}`, value }),
        );
        const response = await fetch(`${url}/records`, { method: 'POST', headers: { ...headers, 'x-batch-id': `b${batch}` }, body: lines.join('\n') });
        if (response.status !== 200) throw new Error(`send failed: ${response.status} ${await response.text()}`);
      }
      await fetch(`${url}/close`, { method: 'POST', headers });
    }),
  );
  const sentAt = performance.now();
  let view: ApiResponse<'getShuffleJob'>;
  for (;;) {
    view = await api.getShuffleJob({ params: { jobId: job.jobId } });
    if (view.state === 'complete') break;
    if (performance.now() - started > 600_000) throw new Error(`not complete after 10 min: ${view.recordsOut} of ${view.recordsIn}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const endToEnd = total / ((performance.now() - started) / 1000);
  if (view.recordsIn !== total || view.recordsOut !== total) throw new Error(`counts ${view.recordsIn} in, ${view.recordsOut} out, expected ${total}`);

  // The ceiling: the same records in the same messages through one queue of the same local SQS.
  const sqs = new SQSClient({ endpoint: stack.aws.endpoint, region: stack.runner.region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: `bench-shuffle-ceiling-${process.pid}` }));
  const body = JSON.stringify({ records: Array.from({ length: RECORDS_PER_MESSAGE }, (_, i) => ({ key: `key-${i}`, value })) });
  const messages = Math.ceil(total / RECORDS_PER_MESSAGE);
  const rawStarted = performance.now();
  const senders = 8;
  await Promise.all(
    Array.from({ length: senders }, async (_, sender) => {
      for (let i = sender * 10; i < messages; i += senders * 10) {
        const count = Math.min(10, messages - i);
        await sqs.send(
          new SendMessageBatchCommand({ QueueUrl, Entries: Array.from({ length: count }, (_, index) => ({ Id: String(index), MessageBody: body })) }),
        );
      }
    }),
  );
  const rawSent = performance.now();
  let received = 0;
  await Promise.all(
    Array.from({ length: senders }, async () => {
      while (received < messages) {
        const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
        received += Messages.length;
        if (Messages.length > 0)
          await sqs.send(
            new DeleteMessageBatchCommand({
              QueueUrl,
              Entries: Messages.map((message, index) => ({ Id: String(index), ReceiptHandle: message.ReceiptHandle! })),
            }),
          );
      }
    }),
  );
  const rawDone = performance.now();
  await sqs.send(new DeleteQueueCommand({ QueueUrl }));
  const rate = (records: number, ms: number) =>
    `${Math.round(records / (ms / 1000))
      .toLocaleString('en-US')
      .padStart(9)} records/s`;

  console.log(
    `bench:shuffle  ${workerCount} workers on 2 hosts, ${total.toLocaleString('en-US')} records of ${value.length + 10} bytes in batches of ${batchSize}; ${RECORDS_PER_MESSAGE} records per SQS message`,
  );
  console.log(`  end to end (first send → job complete, counts matched)   ${rate(total, (total / endToEnd) * 1000)}`);
  console.log(`    of which sending through the bridges took               ${((sentAt - started) / 1000).toFixed(2)} s`);
  console.log(`  raw SQS on this machine, same messages: send              ${rate(total, rawSent - rawStarted)}`);
  console.log(`                                          receive + delete  ${rate(total, rawDone - rawSent)}`);
  console.log(`                                          send, then receive ${rate(total, rawDone - rawStarted)}`);
  console.log('  (agents, emulator and this client share the machine; each record crosses SQS once, like the raw figures)');
} finally {
  await stack.stop();
  rmSync(stateDir, { recursive: true, force: true });
}
