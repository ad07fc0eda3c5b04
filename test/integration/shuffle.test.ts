import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { GetQueueUrlCommand, ListQueueTagsCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploymentFromEnvironment, stackNameFor } from '#events/naming.ts';
import { projectRoot } from '../../local/processes.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';
import { localAwsConfig } from '../helpers/local-aws.ts';

describe('shuffle service', () => {
  let h1: RunningAgent;
  let h2: RunningAgent;
  const workers: { name: string; vmId: string; agent: RunningAgent }[] = [];
  let job: any;
  const metadataUrl = async (worker: (typeof workers)[number]) => ((await worker.agent.status()) as any).vms[worker.vmId].metadataUrl as string;
  const headers = { 'metadata-flavor': 'Stratoplane' };

  /** Everything a worker's partitions hold, read through its bridge page by page, as the VM would. */
  async function partitionOf(worker: (typeof workers)[number]): Promise<{ key: string; value: string }[]> {
    const records: { key: string; value: string }[] = [];
    for (let offset = 0; ; ) {
      const page = (await (
        await fetch(`${await metadataUrl(worker)}/stratoplane/v1/shuffle/${job.jobId}/records?offset=${offset}&limit=250`, { headers })
      ).json()) as any;
      records.push(...page.records);
      if (page.records.length === 0) return records;
      offset = page.nextOffset;
    }
  }

  beforeAll(async () => {
    [h1, h2] = await Promise.all([startAgent(uniqueId('shuf1'), '198.51.100.211'), startAgent(uniqueId('shuf2'), '198.51.100.212')]);
    const network = await expectOk(api('POST', '/networks', { name: 'shuffle', cidr: '10.77.1.0/24' }), 201);
    for (const [name, agent] of [
      ['w1', h1],
      ['w2', h1],
      ['w3', h2],
    ] as const) {
      workers.push({ name, agent, vmId: (await expectOk(createVmOn({ name, networkId: network.networkId, hostId: agent.hostId }), 201)).vmId });
    }
    await eventually(async () => {
      for (const worker of workers) expect(((await worker.agent.status()) as any).vms[worker.vmId]).toBeDefined();
    });
    job = await expectOk(api('POST', '/shuffle-jobs', { name: 'word-count', workerVmIds: workers.map((worker) => worker.vmId), partitions: 8 }), 201);
    // Each worker's host hears of the job through the VM's change.
    await eventually(
      async () => {
        for (const worker of workers)
          expect((await fetch(`${await metadataUrl(worker)}/stratoplane/v1/shuffle/${job.jobId}/records`, { headers })).status).toBe(200);
      },
      30_000,
      200,
    );
  }, 90_000);

  afterAll(async () => {
    await Promise.all([h1, h2].filter(Boolean).map((agent) => agent.process.stop()));
  });

  it('delivers every record to the one worker of its key, exactly once, and completes when the counts match', async () => {
    const runs = await Promise.all(
      workers.map(async (worker) => {
        const { stdout } = await promisify(execFile)(
          process.execPath,
          [
            '--import',
            'tsx',
            path.join(projectRoot, 'test/fixtures/shuffle-worker.ts'),
            '--metadata-url',
            await metadataUrl(worker),
            '--job',
            job.jobId,
            '--name',
            worker.name,
          ],
          { cwd: projectRoot },
        );
        return JSON.parse(stdout) as { answers: any[]; close: any };
      }),
    );
    for (const run of runs) {
      // The batch sent again, while in flight and after, was recognised, not sent twice.
      expect(run.answers.every((answer) => answer.status === 200 && answer.accepted === 200)).toBe(true);
      expect(
        run.answers
          .filter((answer) => !answer.duplicate)
          .map((answer) => answer.batch)
          .sort(),
      ).toEqual([0, 1, 2]);
      expect(run.answers.filter((answer) => answer.duplicate).map((answer) => answer.batch)).toEqual([0, 0]);
      expect(run.close).toEqual({ status: 200, sent: 600 });
    }
    await eventually(
      async () => expect(await expectOk(api('GET', `/shuffle-jobs/${job.jobId}`))).toMatchObject({ state: 'complete', recordsIn: 1800, recordsOut: 1800 }),
      60_000,
      250,
    );

    const partitions = await Promise.all(workers.map(partitionOf));
    const ownerOfKey = new Map<string, string>();
    const seen = new Set<string>();
    for (const [index, records] of partitions.entries()) {
      for (const record of records) {
        const owner = ownerOfKey.get(record.key) ?? workers[index]!.name;
        expect(owner).toBe(workers[index]!.name);
        ownerOfKey.set(record.key, owner);
        expect(seen.has(record.value)).toBe(false);
        seen.add(record.value);
      }
    }
    expect(seen.size).toBe(1800);
    expect(ownerOfKey.size).toBe(150);
    // More than one worker holds keys: the partitions are spread.
    expect(new Set(ownerOfKey.values()).size).toBeGreaterThan(1);
  }, 120_000);

  it('stores a chunk SQS delivers twice only once', async () => {
    const [sender, , target] = workers as [(typeof workers)[number], unknown, (typeof workers)[number]];
    const before = (await partitionOf(target)).length;
    const statsOf = async () => ((await target.agent.status()) as any).shuffle[`${job.jobId}/${target.vmId}`];
    const duplicatesBefore = (await statsOf()).duplicates;
    // The queue is the worker's own; SQS may deliver any message again, as this one is.
    const sqs = new SQSClient(localAwsConfig());
    const { QueueUrl } = await sqs.send(
      new GetQueueUrlCommand({ QueueName: `${stackNameFor(localAwsConfig().region, deploymentFromEnvironment())}-shuffle-${job.jobId}-${target.vmId}` }),
    );
    const again = {
      jobId: job.jobId,
      targetVmId: target.vmId,
      chunkId: `${sender.vmId}/batch-0/${target.vmId}/0`,
      records: [{ key: 'key-1', value: 'delivered-again' }],
    };
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: JSON.stringify(again) }));
    await eventually(async () => expect((await statsOf()).duplicates).toBe(duplicatesBefore + 1), 20_000, 100);
    expect((await partitionOf(target)).length).toBe(before);
    expect(await expectOk(api('GET', `/shuffle-jobs/${job.jobId}`))).toMatchObject({ state: 'complete', recordsIn: 1800, recordsOut: 1800 });
  });

  it("refuses records from a VM that is not the job's worker, and malformed ones, with the reason", async () => {
    const url = `${await metadataUrl(workers[0]!)}/stratoplane/v1/shuffle`;
    const post = async (jobId: string, body: string, extra: Record<string, string> = { 'x-batch-id': 'x-1' }) => {
      const response = await fetch(`${url}/${jobId}/records`, { method: 'POST', headers: { ...headers, ...extra }, body });
      return { status: response.status, body: await response.text() };
    };
    expect((await post('shuf-000000000000', '{"key":"a","value":"b"}\n')).status).toBe(404);
    expect(await post(job.jobId, '{"key":"a","value":"b"}\nnot json\n')).toEqual({ status: 400, body: 'line 2: not JSON.\n' });
    expect((await post(job.jobId, '{"key":"a","value":"b"}\n', {})).status).toBe(400);
    // Closed: nothing more is taken.
    expect((await post(job.jobId, '{"key":"a","value":"b"}\n', { 'x-batch-id': 'late' })).status).toBe(409);
    // Without the metadata header the bridge answers nothing (SSRF defence).
    expect((await fetch(`${url}/${job.jobId}/records`)).status).toBe(403);
  });

  it("names its workers' hosts on the job's queues (what the host policy admits), and a worker's new host once it moves", async () => {
    const sqs = new SQSClient(localAwsConfig());
    const tagsOf = async (vmId: string) => {
      const { QueueUrl } = await sqs.send(
        new GetQueueUrlCommand({ QueueName: `${stackNameFor(localAwsConfig().region, deploymentFromEnvironment())}-shuffle-${job.jobId}-${vmId}` }),
      );
      return (await sqs.send(new ListQueueTagsCommand({ QueueUrl }))).Tags ?? {};
    };
    const both = { 'stratoplane:job-hosts': `/${[h1.hostId, h2.hostId].sort().join('/')}/` };
    for (const worker of workers) expect(await tagsOf(worker.vmId)).toEqual(both);
    // w3 leaves h2 for h1: h2 runs no worker any more, so no queue of the job names it.
    // h2 keeps the queues while it holds w3's spill, until h1 took it over.
    await expectOk(migrateVmTo(workers[2]!.vmId, h1.hostId));
    await eventually(
      async () => {
        for (const worker of workers) expect(await tagsOf(worker.vmId)).toEqual({ 'stratoplane:job-hosts': `/${h1.hostId}/` });
      },
      30_000,
      200,
    );
  });
});
