import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { workerFor } from '../../host-agent/partitioner.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';
import { tokenFor } from '../helpers/tokens.ts';

/**
 * A shuffle worker that moves between hosts takes its spilled partitions along: the host it
 * left hands them to its new host (over the peer listener, with a ticket the control plane
 * checks), records sent meanwhile wait in its queue, and the job completes with every record
 * exactly once at the worker's new host. Nobody else gets the spill.
 */
describe('shuffle state of a migrating worker', () => {
  let h1: RunningAgent;
  let h2: RunningAgent;
  let h3: RunningAgent;
  let job: any;
  /** How many records w2's partitions hold once the job completed. */
  let w2Records = 0;
  const vmIds: Record<'w1' | 'w2', string> = { w1: '', w2: '' };
  const headers = { 'metadata-flavor': 'Stratoplane' };
  const spillOf = (agent: RunningAgent, vmId: string) => path.join(tmpdir(), `stratoplane-shuffle-${agent.hostId}`, job.jobId, `${vmId}.records`);
  const metadataUrl = async (agent: RunningAgent, vmId: string) => {
    const url = ((await agent.status()) as any).vms[vmId]?.metadataUrl as string | undefined;
    if (!url) throw new Error(`vm ${vmId} has no bridge on ${agent.hostId} yet`);
    return `${url}/stratoplane/v1/shuffle/${job.jobId}`;
  };
  /**
   * A worker's call through its bridge on `agent`, again while the bridge is not there yet, its
   * host has not heard of the job yet (404) or its state is on its way (503).
   */
  async function call(agent: RunningAgent, vmId: string, what: string, init: RequestInit = {}): Promise<any> {
    let answer: any;
    await eventually(
      async () => {
        const response = await fetch(`${await metadataUrl(agent, vmId)}/${what}`, { ...init, headers: { ...headers, ...(init.headers as object) } });
        answer = { status: response.status, ...((await response.json()) as object) };
        expect([404, 503]).not.toContain(response.status);
      },
      60_000,
      200,
    );
    return answer;
  }
  const batchOf = (name: string, batch: number) =>
    Array.from({ length: 100 }, (_, i) => ({ key: `key-${(batch * 13 + i) % 40}`, value: `${name}-${batch}-${i}` }));
  const send = (agent: RunningAgent, vmId: string, name: string, batch: number) =>
    call(agent, vmId, 'records', {
      method: 'POST',
      headers: { 'x-batch-id': `batch-${batch}` },
      body: `${batchOf(name, batch)
        .map((record) => JSON.stringify(record))
        .join('\n')}\n`,
    });
  async function partitionOf(agent: RunningAgent, vmId: string): Promise<{ key: string; value: string }[]> {
    const records: { key: string; value: string }[] = [];
    for (let offset = 0; ; ) {
      const page = await call(agent, vmId, `records?offset=${offset}&limit=250`);
      records.push(...page.records);
      if (page.records.length === 0) return records;
      offset = page.nextOffset;
    }
  }
  const statsOf = async (agent: RunningAgent, vmId: string) => ((await agent.status()) as any).shuffle[`${job.jobId}/${vmId}`];

  beforeAll(async () => {
    [h1, h2, h3] = await Promise.all([
      startAgent(uniqueId('mshuf1'), '198.51.100.221'),
      startAgent(uniqueId('mshuf2'), '198.51.100.222'),
      startAgent(uniqueId('mshuf3'), '198.51.100.223'),
    ]);
    const network = await expectOk(api('POST', '/networks', { name: 'shuffle-moves', cidr: '10.77.2.0/24' }), 201);
    vmIds.w1 = (await expectOk(createVmOn({ name: 'w1', networkId: network.networkId, hostId: h1.hostId }), 201)).vmId;
    vmIds.w2 = (await expectOk(createVmOn({ name: 'w2', networkId: network.networkId, hostId: h2.hostId }), 201)).vmId;
    job = await expectOk(api('POST', '/shuffle-jobs', { name: 'moving-count', workerVmIds: [vmIds.w1, vmIds.w2], partitions: 4 }), 201);
    await eventually(
      async () => {
        await call(h1, vmIds.w1, 'records');
        await call(h2, vmIds.w2, 'records');
      },
      60_000,
      200,
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.all([h1, h2, h3].filter(Boolean).map((agent) => agent.process.stop()));
  });

  it('hands the spill to the worker on its new host, keeps what was sent meanwhile, and completes with every record once', async () => {
    const partitioning = { partitions: job.partitions, workers: job.workers.map((worker: any) => worker.vmId as string) };
    const expected = (worker: string, sent: { name: string; batches: number[] }[]) =>
      sent.flatMap(({ name, batches }) => batches.flatMap((batch) => batchOf(name, batch))).filter((record) => workerFor(partitioning, record.key) === worker);
    // Before the move: both send; w2's share is spilled on h2.
    expect((await send(h1, vmIds.w1, 'w1', 0)).accepted).toBe(100);
    expect((await send(h2, vmIds.w2, 'w2', 0)).accepted).toBe(100);
    const before = expected(vmIds.w2, [
      { name: 'w1', batches: [0] },
      { name: 'w2', batches: [0] },
    ]);
    expect(before.length).toBeGreaterThan(0);
    await eventually(async () => expect((await statsOf(h2, vmIds.w2))?.received).toBe(before.length), 30_000, 100);

    // w2 moves to h3, the operator naming it; w1 sends on at once, while the move is under way.
    await expectOk(migrateVmTo(vmIds.w2, h3.hostId));
    expect((await send(h1, vmIds.w1, 'w1', 1)).accepted).toBe(100);
    // At its new host, w2's earlier batch is still known (what it sent moved too), and its next one is taken.
    expect(await send(h3, vmIds.w2, 'w2', 0)).toMatchObject({ status: 200, accepted: 100, duplicate: true });
    expect(await send(h3, vmIds.w2, 'w2', 1)).toMatchObject({ status: 200, accepted: 100, duplicate: false });
    expect((await send(h1, vmIds.w1, 'w1', 2)).accepted).toBe(100);
    expect(await call(h1, vmIds.w1, 'close', { method: 'POST' })).toEqual({ status: 200, sent: 300 });
    expect(await call(h3, vmIds.w2, 'close', { method: 'POST' })).toEqual({ status: 200, sent: 200 });

    await eventually(
      async () => expect(await expectOk(api('GET', `/shuffle-jobs/${job.jobId}`))).toMatchObject({ state: 'complete', recordsIn: 500, recordsOut: 500 }),
      90_000,
      250,
    );
    const final = await expectOk(api('GET', `/shuffle-jobs/${job.jobId}`));
    expect(final.workers.find((worker: any) => worker.vmId === vmIds.w2)).toMatchObject({ hostId: h3.hostId, closed: true, sent: 200 });

    // Every record of w2's partitions, once, read at its new host: the ones spilled on h2 first, in the order h2 stored them.
    const all = [
      { name: 'w1', batches: [0, 1, 2] },
      { name: 'w2', batches: [0, 1] },
    ];
    const atW2 = await partitionOf(h3, vmIds.w2);
    expect(atW2.length).toBe(new Set(atW2.map((record) => record.value)).size);
    expect(atW2.map((record) => record.value).sort()).toEqual(
      expected(vmIds.w2, all)
        .map((record) => record.value)
        .sort(),
    );
    expect(new Set(atW2.slice(0, before.length).map((record) => record.value))).toEqual(new Set(before.map((record) => record.value)));
    const atW1 = await partitionOf(h1, vmIds.w1);
    expect(atW1.length + atW2.length).toBe(500);
    expect(new Set([...atW1, ...atW2].map((record) => record.value)).size).toBe(500);

    // The host it left deleted its copy once h3 took it over; h3 holds it.
    await eventually(async () => {
      expect(((await h2.status()) as any).shuffleHeld).toEqual([]);
      expect(existsSync(spillOf(h2, vmIds.w2))).toBe(false);
    });
    expect(existsSync(spillOf(h3, vmIds.w2))).toBe(true);
    expect(h3.stderr.some((line) => line.includes(`took over its spill from host ${h2.hostId}`))).toBe(true);
    w2Records = atW2.length;
    // A VM asks its bridge for a spill: its bridge serves no such thing.
    expect((await fetch(`${await metadataUrl(h3, vmIds.w2)}/spill`, { headers })).status).toBe(404);
  }, 240_000);

  it("refuses a worker's spill to another host, for another VM, and to requests without the ticket issued", async () => {
    const tokens = { h1: tokenFor('host', h1.hostId), h2: tokenFor('host', h2.hostId), h3: tokenFor('host', h3.hostId) };
    const handoffPath = (hostId: string, vmId: string) => `/hosts/${hostId}/shuffle-jobs/${job.jobId}/workers/${vmId}/handoff`;
    // The control plane gives a ticket only to the host the worker runs on, and only when another holds its spill.
    expect((await api('POST', handoffPath(h2.hostId, vmIds.w2), undefined, tokens.h2)).status).toBe(403);
    expect((await api('POST', handoffPath(h1.hostId, vmIds.w2), undefined, tokens.h1)).status).toBe(403);
    expect((await api('POST', handoffPath(h3.hostId, vmIds.w2), undefined, tokens.h3)).status).toBe(409);
    expect((await api('POST', handoffPath(h1.hostId, vmIds.w2), undefined, tokens.h2)).status).toBe(403);
    // A host not holding the spill learns nothing of a ticket.
    const check = (holder: string, vmId: string, ticket: string, toHostId: string, token: Promise<string>) =>
      api('POST', `${handoffPath(holder, vmId)}/check`, { ticket, toHostId }, token);
    expect((await check(h1.hostId, vmIds.w2, 'x'.repeat(43), h1.hostId, tokens.h1)).status).toBe(403);

    // w2 moves on to h1, whose agent is frozen meanwhile: the ticket the test takes with h1's token is the only one.
    h1.process.child.kill('SIGSTOP');
    let ticket: any;
    try {
      await expectOk(migrateVmTo(vmIds.w2, h1.hostId));
      // As soon as h3 has said where it serves the spill it kept (it does once it heard w2 left).
      await eventually(
        async () => {
          const answer = await api('POST', handoffPath(h1.hostId, vmIds.w2), undefined, tokens.h1);
          expect(answer.status).toBe(200);
          ticket = answer.body;
        },
        30_000,
        200,
      );
      expect(ticket).toMatchObject({ fromHostId: h3.hostId, vmId: vmIds.w2 });
      const peer = async (vmId: string, part: string, auth: Record<string, string>, method = 'GET') =>
        (await fetch(`${ticket.spillUrl}/v1/shuffle/${job.jobId}/workers/${vmId}${part}`, { method, headers: auth })).status;
      const as = (hostId: string, value = ticket.ticket) => ({ authorization: `Bearer ${value}`, 'x-stratoplane-host': hostId });
      // No ticket, a made-up one, the right one presented by another host, or for another VM: refused.
      expect(await peer(vmIds.w2, '/records', {})).toBe(401);
      expect(await peer(vmIds.w2, '/records', as(h1.hostId, 'y'.repeat(43)))).toBe(403);
      expect(await peer(vmIds.w2, '/records', as(h2.hostId))).toBe(403);
      expect(await peer(vmIds.w2, '/sent', as(h3.hostId))).toBe(403);
      expect(await peer(vmIds.w1, '/records', as(h1.hostId))).toBe(403);
      // Nor may anyone delete it before its new host took it over.
      expect(await peer(vmIds.w2, '', as(h1.hostId), 'DELETE')).toBe(409);
      expect((await check(h3.hostId, vmIds.w2, ticket.ticket, h2.hostId, tokens.h3)).status).toBe(403);
      // The host it was issued to gets it (what h1's agent will do once it runs again).
      expect(await peer(vmIds.w2, '/records', as(h1.hostId))).toBe(200);
    } finally {
      h1.process.child.kill('SIGCONT');
    }
    // Thawed, h1 takes w2's spill over from h3 (with a ticket of its own): every record still there once.
    await eventually(async () => expect((await statsOf(h1, vmIds.w2))?.received).toBe(w2Records), 60_000, 200);
    const atH1 = await partitionOf(h1, vmIds.w2);
    expect(new Set(atH1.map((record) => record.value)).size).toBe(atH1.length);
    await eventually(async () => expect(existsSync(spillOf(h3, vmIds.w2))).toBe(false), 30_000, 200);
  }, 180_000);
});
