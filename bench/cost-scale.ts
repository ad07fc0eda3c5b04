import { BatchWriteItemCommand, DynamoDBClient, type WriteRequest } from '@aws-sdk/client-dynamodb';
import { marshall } from '@aws-sdk/util-dynamodb';
import type { ApiClient } from '#events/api-client.ts';
import { placementIndexAttributes } from '#functions/compute/placement.ts';
import { freeListEntry } from '#functions/network/addresses.ts';
import { freshAddress } from '#functions/network/cidr.ts';
import { indexKeys, keys } from '#functions/core/table-keys.ts';
import type { AwsCallTotal, AwsProxy } from '../local/aws/aws-proxy.ts';
import type { LocalStack } from '../local/local-stack.ts';
import { awsCallsByAction, functionInvocations, growth, untilQuiet } from './counters.ts';

/**
 * What one VM create costs as the fleet and the network grow: the AWS calls the create request
 * itself makes (placement, address, transaction; what it sets off afterwards does not depend on
 * either and is measured by the main table), at 100 and 10,000 hosts that can take VMs, and in a
 * network with 10 and with 5,000 addresses in use. The hosts and slots beyond the stack's own are
 * written straight into the table (BatchWriteItem, not the API: 10,000 registrations would make
 * 10,000 queues), exactly as registration and creates write them: real capacity (32) and a spread
 * of loads, in the placement index, listed by GET /hosts; slots active with the network's cursor
 * past them. Their queue is one real host queue nobody reads, so a VM placed on one of them is
 * fanned out to as to any host; and they are alive while creates are measured: their heartbeats
 * are written into the liveness table as they are seeded (placement takes only healthy hosts).
 */
export interface ScaleLine {
  line: string;
  detail: string;
}

export async function measureAtScale(options: {
  stack: LocalStack;
  proxy: AwsProxy;
  tenant: ApiClient;
  operator: ApiClient;
  repeat: number;
  isWork: (key: string) => boolean;
  /** Where the hosts' heartbeats go. */
  livenessTable: string;
  log: (message: string) => void;
}): Promise<ScaleLine[]> {
  const { stack, proxy, tenant, operator, repeat, isWork, livenessTable, log } = options;
  const region = stack.runner.region;
  const table = Object.entries(stack.runner.resources).find(([id]) => id.startsWith('Metadata'))![1];
  const dynamodb = new DynamoDBClient({ endpoint: stack.aws.endpoint, region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const lines: ScaleLine[] = [];

  // One real host queue for every seeded host; its host runs no VMs, so placement never picks it.
  const sink = await operator.registerHost({ body: { hostId: 'cost-sink', address: '198.18.255.254', capacity: 1, vmRuntime: 'none' } });

  /**
   * Writes `count` items, each made (`item(i)`) as its batch of 25 is sent, 4 batches at a time. A
   * batch the emulator fails (a reset connection under this load) is sent again, a few times.
   */
  async function write(count: number, item: (i: number) => WriteRequest, into = table) {
    let next = 0;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < count) {
          const start = next;
          next = Math.min(count, next + 25);
          let pending = Array.from({ length: next - start }, (_, i) => item(start + i));
          for (let attempt = 0; pending.length > 0; attempt++) {
            if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(5_000, 100 * 2 ** attempt)));
            try {
              const { UnprocessedItems } = await dynamodb.send(new BatchWriteItemCommand({ RequestItems: { [into]: pending } }));
              pending = UnprocessedItems?.[into] ?? [];
            } catch (error) {
              if (attempt >= 8) throw error;
              log(`BatchWriteItem failed (${(error as Error).message}); sending it again`);
            }
          }
        }
      }),
    );
  }

  const capacity = 32;
  const seededAddress = (i: number) => `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  const seededHost = (i: number) => {
    const hostId = `seed-${i}`;
    // Loads 0 to 32 across the fleet: some hosts full, most with room.
    const vmCount = (i * 7) % (capacity + 1);
    const item = {
      ...keys.host(hostId),
      kind: 'host',
      hostId,
      address: seededAddress(i),
      region,
      capacity,
      vmCount,
      vmRuntime: 'process',
      queueUrl: sink.queueUrl,
      createdAt: new Date().toISOString(),
      gsi1pk: indexKeys.allHosts,
      gsi1sk: hostId,
      ...placementIndexAttributes({ hostId, capacity, vmCount, vmRuntime: 'process' }, region),
    };
    return { PutRequest: { Item: marshall(item) } };
  };
  let seeded = 0;
  const ownHosts = (await operator.listHosts()).hosts.filter((host) => host.vmRuntime !== 'none' && host.region === region).length;
  async function fleetOf(hosts: number) {
    const started = Date.now();
    const more = hosts - ownHosts - seeded;
    await write(more, (i) => seededHost(seeded + i));
    await heartbeats(seeded, seeded + more);
    seeded += more;
    log(`seeded ${more} hosts in ${((Date.now() - started) / 1000).toFixed(0)} s (${ownHosts + seeded} that take VMs); waiting for the stream to settle...`);
    await quiet(2000, 30 * 60_000);
  }

  /**
   * The create's delivery of its endpoint to the hosts' queues (the fast path, before it answers)
   * and those hosts' receives: one of each per host its network spans, which placement's spreading
   * makes more in a bigger fleet; counted apart from the calls placement and allocation make.
   */
  const isDelivery = (key: string) => key.startsWith('sqs ');

  /** Calls the create request makes, not those that run beside it: the agents' heartbeats (writes to the liveness table) and Lambda's stream polling. */
  const ofTheRequest = (total: AwsCallTotal) =>
    total.service !== 'dynamodbstreams' &&
    !(total.service === 'dynamodb' && /^(PutItem|BatchWriteItem)/.test(total.action) && total.resource === livenessTable);

  /**
   * Waits until the control plane made no call for `quietMs` (what the stream set off, done),
   * leaving out the agents' heartbeats (four hosts beating every 5 s leave few quiet seconds).
   */
  const quiet = (quietMs?: number, timeoutMs?: number) =>
    untilQuiet(() => new Map([...awsCallsByAction(proxy.snapshot().filter(ofTheRequest)).calls].filter(([key]) => isWork(key))), quietMs, timeoutMs);

  /**
   * The seeded hosts' heartbeats, written once as they are seeded: as if their agents beat all
   * along, each says it was heard from a few hours ahead, past the bench's end, so every sweep
   * finds them healthy. Beating for real would be 10,000 writes every 5 s; written before each
   * create and taken away after, they fell silent between measurements, and each minute's sweep
   * took 10,000 hosts out of the placement index and back, and looked for their VMs to restart,
   * for longer than the creates waited to be measured alone.
   */
  async function heartbeats(from: number, to: number) {
    const aheadMs = 4 * 3_600_000;
    await write(
      to - from,
      (i) => ({
        PutRequest: {
          Item: marshall({ hostId: `seed-${from + i}`, lastSeen: Date.now() + aheadMs, expiresAt: Math.floor((Date.now() + 2 * aheadMs) / 1000) }),
        },
      }),
      livenessTable,
    );
  }

  /** How often the host sweep (every minute: restarts, drains) has run: a create measured while it ran is measured again. */
  const sweeps = async () => [...(await functionInvocations(stack))].filter(([name]) => name.includes('SweepHosts')).reduce((sum, [, count]) => sum + count, 0);

  /**
   * Runs `create` once unmeasured (warm functions, cached authorizer), then `repeat` times alone,
   * each after a quiet moment, counting the calls made until it answered; one during which the
   * host sweep ran is not counted, and made again.
   */
  async function perCreate(create: (name: string) => Promise<unknown>): Promise<{ calls: number; readUnits: number; breakdown: Map<string, number> }> {
    const breakdown = new Map<string, number>();
    let readUnits = 0;
    let made = 0;
    await create(`warm-${made++}`);
    for (let round = 0; round < repeat; ) {
      await quiet();
      const swept = await sweeps();
      const before = awsCallsByAction(proxy.snapshot().filter(ofTheRequest));
      await create(`vm-${made++}`);
      const after = awsCallsByAction(proxy.snapshot().filter(ofTheRequest));
      if ((await sweeps()) !== swept) {
        log('the host sweep ran during that create: measuring another');
        continue;
      }
      for (const [key, count] of growth(after.calls, before.calls)) if (isWork(key)) breakdown.set(key, (breakdown.get(key) ?? 0) + count / repeat);
      readUnits += (after.readUnits - before.readUnits) / repeat;
      round++;
    }
    const calls = [...breakdown].filter(([key]) => !isDelivery(key)).reduce((sum, [, count]) => sum + count, 0);
    return { calls, readUnits, breakdown };
  }
  const n = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(1));
  const listed = (entries: [string, number][]) =>
    entries
      .sort((a, b) => b[1] - a[1])
      .map(([key, count]) => `${key} ${n(count)}`)
      .join(', ');
  const describe = (cost: { readUnits: number; breakdown: Map<string, number> }) => {
    const delivery = [...cost.breakdown].filter(([key]) => isDelivery(key));
    return `${listed([...cost.breakdown].filter(([key]) => !isDelivery(key)))}; ${n(Number(cost.readUnits.toFixed(1)))} read units${
      delivery.length > 0 ? `; apart, its delivery to the hosts of its network: ${listed(delivery)}` : ''
    }`;
  };

  // Placement: creates without a host, in a network with room, at 100 and at 10,000 hosts.
  const placed = await tenant.createNetwork({ body: { name: 'scale', cidr: '10.70.0.0/16' } });
  for (const hosts of [100, 10_000]) {
    await fleetOf(hosts);
    const cost = await perCreate((name) => tenant.createVm({ body: { name: `placed-${hosts}-${name}`, networkId: placed.networkId } }));
    lines.push({ line: `placement_calls hosts=${hosts} calls=${n(Number(cost.calls.toFixed(1)))}`, detail: describe(cost) });
    log(`measured: placement at ${hosts} hosts`);
  }

  /** Writes the slots of `network`'s first `used` addresses, the last `released` of them released (on the free list), and its cursor past them. */
  async function addressesInUse(network: { networkId: string; cidr: string }, used: number, released = 0) {
    const started = Date.now();
    await write(used + 1, (i) => {
      if (i === used)
        return {
          PutRequest: { Item: marshall({ ...keys.addressCursor(network.networkId), kind: 'address-cursor', networkId: network.networkId, handedOut: used }) },
        };
      const ip = freshAddress(network.cidr, i + 1)!;
      const slot = { ...keys.slot(network.networkId, ip), kind: 'slot', networkId: network.networkId, ip };
      const item =
        i >= used - released
          ? { ...slot, version: 2, state: 'released', ...freeListEntry(network.networkId) }
          : {
              ...slot,
              version: 1,
              state: 'active',
              vmId: `vm-seed${String(i).padStart(7, '0')}`,
              hostId: `seed-${i % seeded}`,
              endpoint: seededAddress(i % seeded),
            };
      return { PutRequest: { Item: marshall(item) } };
    });
    log(`seeded ${used} addresses (${released} released) in ${((Date.now() - started) / 1000).toFixed(0)} s; waiting for the stream to settle...`);
    await quiet(2000, 30 * 60_000);
  }

  // Addresses: the same creates in a /16 with 10 and with 5,000 addresses in use (fresh ones left).
  for (const [used, cidr] of [
    [10, '10.80.0.0/16'],
    [5000, '10.81.0.0/16'],
  ] as const) {
    const network = await tenant.createNetwork({ body: { name: `used-${used}`, cidr } });
    await addressesInUse(network, used);
    const cost = await perCreate((name) => tenant.createVm({ body: { name: `addressed-${used}-${name}`, networkId: network.networkId } }));
    lines.push({ line: `ipam_calls used=${used} calls=${n(Number(cost.calls.toFixed(1)))}`, detail: describe(cost) });
    log(`measured: addresses with ${used} in use`);
  }

  // And once every address was handed out: a full /24 but for 20 released addresses, reused from its free list.
  const full = await tenant.createNetwork({ body: { name: 'reuse', cidr: '10.82.0.0/24' } });
  await addressesInUse(full, 253, 20);
  const reuse = await perCreate(async (name) => {
    const vm = await tenant.createVm({ body: { name: `reused-${name}`, networkId: full.networkId } });
    if (vm.endpoint.version !== 3) throw new Error(`a released address is reused under its next version (3), not ${vm.endpoint.version}`);
  });
  lines.push({ line: `ipam_reuse_calls used=233 released=20 calls=${n(Number(reuse.calls.toFixed(1)))}`, detail: describe(reuse) });
  return lines;
}
