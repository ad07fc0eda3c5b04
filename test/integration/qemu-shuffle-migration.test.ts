import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureGuestImage } from '../../local/guest-image/build.ts';
import { DataPlaneLab, labUnavailableReason } from '../../local/data-plane/lab.ts';
import { eventually, type RunningAgent, startAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';
import { qemuUnavailableReason } from '../helpers/guest.ts';
import { GuestSsh } from '../helpers/guest-ssh.ts';
import { uploadImage } from '../helpers/images.ts';
import { tenantToken } from '../helpers/tokens.ts';

const unavailable = qemuUnavailableReason() ?? (await labUnavailableReason());
if (unavailable) console.warn(`shuffle live migration tests skipped: ${unavailable}`);

/**
 * A real guest, the only worker of a shuffle job, moves live while its records wait at its host:
 * they must follow it (docs/host-services.md#a-worker-that-moves). A guest and two hosts of its
 * own, so nothing another test did to a guest (booted again, half-drained hosts) is in the way.
 */
describe.skipIf(unavailable !== undefined)('a shuffle worker moving live', () => {
  const lab = new DataPlaneLab(`qs${process.pid % 10_000}`, '172.31.244');
  const tenantId = uniqueId('shufflers');
  const tenant = tenantToken(tenantId);
  const asTenant = (method: 'GET', path: string) => api(method, path, undefined, tenant);
  const agents: RunningAgent[] = [];
  let guests: GuestSsh;
  let worker: { vmId: string; ip: string };

  beforeAll(async () => {
    const hosts = await lab.addHosts(2);
    for (const host of hosts)
      agents.push(await startAgent(uniqueId('shm'), host.underlay, 4, undefined, ['--netns', host.netns, '--runtime', 'qemu', '--auto-placement', 'off']));
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'shufflers', cidr: '10.74.0.0/24' }, tenant), 201);
    const image = readFileSync((await ensureGuestImage({ log: () => {} })).path);
    const { imageId } = await uploadImage('stratoplane-guest', image, tenant);
    await eventually(async () => expect((await expectOk(asTenant('GET', `/images/${imageId}`))).state).toBe('available'), 60_000, 250);
    guests = await GuestSsh.create();
    worker = await expectOk(
      createVmOn({ name: 'worker', networkId, hostId: agents[0]!.hostId, imageId, attributes: { 'ssh-keys': guests.sshKeys } }, tenantId),
      201,
    );
    // The test logs in from a VM of the same network (a namespace, no guest) on the host the worker moves to.
    const jumpVm = await expectOk(createVmOn({ name: 'jump', networkId, hostId: agents[1]!.hostId }, tenantId), 201);
    const jump = await lab.plugVm(jumpVm.vmId, jumpVm.ip, lab.hosts[1]!);
    await guests.connect(worker, jump.netns, asTenant);
  }, 300_000);

  afterAll(async () => {
    await guests?.close();
    await Promise.all(agents.map((agent) => agent.process.stop()));
    await lab.destroy();
  });

  it('takes its records along: stored at its old host, read at its new one once each, and the old host lets its copy go', async () => {
    const [source, destination] = agents as [RunningAgent, RunningAgent];
    // One worker: every partition is its own, so each record it sends is stored at its own host.
    const job = await expectOk(api('POST', '/shuffle-jobs', { name: 'live-worker', workerVmIds: [worker.vmId], partitions: 4 }, tenant), 201);
    const url = `http://169.254.169.254/stratoplane/v1/shuffle/${job.jobId}`;
    const flavor = "--header 'Metadata-Flavor: Stratoplane'";
    const batch = (n: number) => Array.from({ length: 40 }, (_, i) => JSON.stringify({ key: `key-${i % 7}`, value: `b${n}-${i}` }));
    const valuesOf = (lines: string[]) => lines.map((line) => JSON.parse(line).value as string);
    /** What the guest's own call through its metadata server answers, once it answers: its host may not have heard of the job yet, or the records be on their way (503). */
    const fromGuest = async (command: string) => {
      let body: any;
      await eventually(
        async () => {
          const output = (await guests.run(worker, `${command} 2>&1; echo " exit=$?"`)).trim();
          expect(output).toMatch(/ exit=0$/);
          body = JSON.parse(output.replace(/ exit=0$/, ''));
        },
        60_000,
        500,
      );
      return body;
    };
    const send = (n: number) => fromGuest(`wget -q -O - ${flavor} --header 'x-batch-id: b${n}' --post-data '${batch(n).join('\n')}' ${url}/records`);
    const key = `${job.jobId}/${worker.vmId}`;

    expect(await send(0)).toMatchObject({ accepted: 40, duplicate: false });
    await eventually(async () => expect(((await source.status()) as any).shuffle[key]?.received).toBe(40), 30_000, 250);

    await expectOk(migrateVmTo(worker.vmId, destination.hostId));
    await eventually(
      async () =>
        expect((await expectOk(asTenant('GET', `/vms/${worker.vmId}`))).lastMigration).toMatchObject({
          outcome: 'completed',
          targetHostId: destination.hostId,
        }),
      120_000,
      500,
    );
    // At its new host the batch it sent before is known (what it sent moved too); the next one is taken.
    expect(await send(0)).toMatchObject({ accepted: 40, duplicate: true });
    expect(await send(1)).toMatchObject({ accepted: 40, duplicate: false });
    expect(await fromGuest(`wget -q -O - ${flavor} --post-data '' ${url}/close`)).toMatchObject({ sent: 80 });
    await eventually(
      async () => expect(await expectOk(asTenant('GET', `/shuffle-jobs/${job.jobId}`))).toMatchObject({ state: 'complete', recordsIn: 80, recordsOut: 80 }),
      90_000,
      500,
    );

    // Every record, once, read by the guest at its new host: those stored at the old host first.
    const read = await fromGuest(`wget -q -O - ${flavor} '${url}/records?offset=0&limit=1000'`);
    const values = (read.records as { value: string }[]).map((record) => record.value);
    expect([...values].sort()).toEqual(valuesOf([...batch(0), ...batch(1)]).sort());
    expect(new Set(values.slice(0, 40))).toEqual(new Set(valuesOf(batch(0))));
    expect(destination.stderr.some((line) => line.includes(`shuffle ${key}: took over its spill from host ${source.hostId}`))).toBe(true);
    await eventually(async () => expect(((await source.status()) as any).shuffleHeld).toEqual([]), 30_000, 250);
    // The job is left in place: deleted, its queues would go before the worker's host hears of it,
    // and that host's next receives be refused (as AWS refuses a queue's calls once its tags are gone).
  }, 300_000);
});
