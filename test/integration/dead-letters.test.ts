import { execFile } from 'node:child_process';
import path from 'node:path';
import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { projectRoot } from '../../local/processes.ts';
import type { DeadLetter, DeadLetterQueue } from '../../ops/dead-letter-queues.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { uniqueId } from '../helpers/api.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';

/**
 * A message its handler can never process, in a batch with messages it can: the others are
 * delivered at once, the poison one is retried with growing delays and then moved to the
 * dead-letter queue with the reason, where an operator sees it and, once the cause is mended,
 * redrives it with `npm run dead-letters` and it is delivered.
 */
describe('dead-letter queues', () => {
  const sqs = new SQSClient(localAwsConfig());
  const queueUrl = (logicalIdPrefix: string) => Object.entries(inject('resources')).find(([id]) => id.startsWith(logicalIdPrefix))![1];
  const agents: RunningAgent[] = [];
  afterAll(async () => Promise.all(agents.map((agent) => agent.process.stop())));

  /** `npm run -s dead-letters -- …` as an operator runs it: its own process, JSON out. */
  const deadLetters = <T>(...args: string[]): Promise<T> =>
    new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', path.join(projectRoot, 'ops/dead-letters.ts'), ...args, '--json'],
        {
          cwd: projectRoot,
          env: {
            ...process.env,
            AWS_ENDPOINT_URL: inject('awsEndpoint'),
            AWS_REGION: inject('region'),
            AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
          },
        },
        (error, stdout, stderr) => (error ? reject(new Error(`dead-letters ${args.join(' ')}: ${stderr}`)) : resolve(JSON.parse(stdout) as T)),
      );
    });

  it('delivers the rest of the batch, moves the poison message to the DLQ with its reason after 5 attempts, and redrives it once mended', async () => {
    const healthy = await startAgent(uniqueId('dlq-ok'), '198.51.100.65');
    agents.push(healthy);
    const unregistered = uniqueId('dlq-missing');
    const change = (hostId: string, vmId: string) => JSON.stringify({ kind: 'credentials', networkId: 'net-dlq', hostId, vmId });
    const poison = change(unregistered, 'vm-poison');
    const sentAt = Date.now();
    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl('FanOutQueue'),
        Entries: [change(healthy.hostId, 'vm-a'), poison, change(healthy.hostId, 'vm-b')].map((body, index) => ({ Id: String(index), MessageBody: body })),
      }),
    );

    // The healthy host hears at once, not after the poison's retries or a visibility timeout.
    await eventually(async () => expect((await healthy.status()).stats.messagesReceived).toBeGreaterThanOrEqual(1), 10_000);

    let letter: DeadLetter | undefined;
    await eventually(
      async () => {
        letter = (await deadLetters<DeadLetter[]>('show', 'fan-out', '--max', '10')).find((candidate) => candidate.body === poison);
        expect(letter).toBeDefined();
      },
      60_000,
      1000,
    );
    const elapsed = Date.now() - sentAt;
    expect(letter).toMatchObject({
      reason: `Error: host ${unregistered} has no registration`,
      attempts: 5,
      sourceQueueArn: expect.stringMatching(/FanOutQueue/),
    });
    // Retried after 1 + 2 + 4 + 8 s, not after four 180 s visibility timeouts.
    expect(elapsed).toBeGreaterThan(15_000);
    expect(elapsed).toBeLessThan(60_000);
    const listed = await deadLetters<DeadLetterQueue[]>('list');
    expect(listed.find((queue) => queue.name === 'fan-out')).toMatchObject({
      messages: expect.any(Number),
      sourceUrls: [expect.stringMatching(/FanOutQueue/)],
    });
    expect(listed.map((queue) => queue.name).sort()).toEqual(['fan-out', 'graph.fifo', 'host', 'image-copy', 'image-verify', 'stream-failures']);

    // The cause is mended (the host registers), and the operator redrives.
    const late = await startAgent(unregistered, '198.51.100.66');
    agents.push(late);
    expect((await late.status()).stats.messagesReceived).toBe(0);
    const result = await deadLetters<{ status: string; moved: number }>('redrive', 'fan-out');
    expect(result.status).toBe('COMPLETED');
    expect(result.moved).toBeGreaterThanOrEqual(1);
    await eventually(async () => expect((await late.status()).stats.messagesReceived).toBeGreaterThanOrEqual(1), 20_000);
    expect((await deadLetters<DeadLetter[]>('show', 'fan-out')).find((candidate) => candidate.body === poison)).toBeUndefined();
  });

  it('moves a graph message that can never be handled to the FIFO dead-letter queue at once, in its node group', async () => {
    const nodeId = uniqueId('node');
    const body = `{"not": "a graph message", "nodeId": "${nodeId}"}`;
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl('GraphQueue'), MessageBody: body, MessageGroupId: nodeId, MessageDeduplicationId: nodeId }));
    let letter: DeadLetter | undefined;
    await eventually(
      async () => {
        letter = (await deadLetters<DeadLetter[]>('show', 'graph.fifo')).find((candidate) => candidate.body === body);
        expect(letter).toBeDefined();
      },
      20_000,
      500,
    );
    expect(letter).toMatchObject({ attempts: 1, reason: expect.stringMatching(/^UnprocessableMessageError: malformed graph message: /) });
  });
});
