import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIDDER_PORT, METADATA_ADDRESS } from '../../host-agent/data-plane/bridge-redirects.ts';
import { DataPlaneLab, labUnavailableReason, type LabHost, type LabVm } from '../../local/data-plane/lab.ts';
import { projectRoot } from '../../local/processes.ts';
import { exchangeTokenLine, mintExchangeToken } from '../../tokens/exchange-tokens.ts';
import { eventually, startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';
import { tenantToken } from '../helpers/tokens.ts';

const run = promisify(execFile);
const unavailable = await labUnavailableReason();
if (unavailable) console.warn(`bidder migration tests skipped: ${unavailable}`);

/**
 * A bidder inside a VM on a host with a namespace connects to 169.254.169.254:7070, the same
 * address on every host, so where its packets come in says which VM it is; when the VM moves, it
 * connects to the same address again and reaches its new host's bid relay.
 */
describe.skipIf(unavailable !== undefined)('a bidder’s connection moves with its VM', () => {
  const lab = new DataPlaneLab(`bm${process.pid % 10_000}`, '172.31.238');
  const tenantId = uniqueId('bidmove');
  const tenant = tenantToken(tenantId);
  const exchangeToken = mintExchangeToken();
  const folder = mkdtempSync(path.join(tmpdir(), 'bidder-migration-'));
  let hosts: LabHost[];
  let agents: RunningAgent[] = [];
  const vms: Record<'mover' | 'neighbour', { vmId: string; ip: string }> = {} as never;
  const labVms: Partial<Record<'mover' | 'neighbour', LabVm>> = {};
  /** Connections each bidder made, from its BIDDER_CONNECTED lines. */
  const connections: Record<string, number> = {};

  const bridgeOf = async (agent: RunningAgent, vmId: string) => ((await agent.status()) as any).vms[vmId];
  const auction = async (agent: RunningAgent, bidders: string[]) => {
    const response = await fetch(`${((await agent.status()) as any).bidRelayUrl}/openrtb2/auction`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${exchangeToken}` },
      body: JSON.stringify({ id: `auction-${Date.now()}`, imp: [{ id: '1', bidfloor: 0.5 }], tmax: 200, ext: { bidders } }),
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  /** A bidder in a VM's namespace, connected to 169.254.169.254:7070, connecting again whenever its connection ends. */
  const startBidder = (vm: LabVm, price: string) => {
    const child = lab.spawnIn(vm.netns, [
      process.execPath,
      '--import',
      'tsx',
      path.join(projectRoot, 'test/fixtures/bidder.ts'),
      '--address',
      METADATA_ADDRESS,
      '--port',
      String(BIDDER_PORT),
      '--price',
      price,
      '--sbrp',
      '2',
      '--reconnect',
    ]);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const connected = /^BIDDER_CONNECTED (\d+)$/.exec(line);
      if (connected) connections[vm.vmId] = Number(connected[1]);
    });
  };

  beforeAll(async () => {
    const tokensFile = path.join(folder, 'exchange-tokens');
    writeFileSync(tokensFile, `${exchangeTokenLine(tenantId, exchangeToken, 'exchange')}\n`);
    hosts = await lab.addHosts(2);
    agents = await Promise.all(
      hosts.map((host) => startAgent(uniqueId('bidhost'), host.underlay, 8, undefined, ['--netns', host.netns, '--bid-relay-tokens', tokensFile])),
    );
    const { networkId } = await expectOk(api('POST', '/networks', { name: 'bidders', cidr: '10.71.0.0/24' }, tenant), 201);
    for (const name of ['mover', 'neighbour'] as const) {
      vms[name] = await expectOk(createVmOn({ name, networkId, hostId: agents[0]!.hostId }, tenantId), 201);
      labVms[name] = await lab.plugVm(vms[name].vmId, vms[name].ip, hosts[0]!);
    }
    startBidder(labVms.mover!, '2');
    startBidder(labVms.neighbour!, '9');
    for (const name of ['mover', 'neighbour'] as const)
      await eventually(async () => expect((await bridgeOf(agents[0]!, vms[name].vmId)).bidder.connected).toBe(true), 30_000, 200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.map((agent) => agent.process.stop()));
    await lab.destroy();
    rmSync(folder, { recursive: true, force: true });
  });

  it('is known by the interface it came in on: each VM’s bidder answers for that VM only, at the address every host serves', async () => {
    const bridge = await bridgeOf(agents[0]!, vms.mover.vmId);
    expect(bridge.bidderAddress).toMatch(new RegExp(`^169\\.254\\.169\\.254:${BIDDER_PORT} from sp[0-9a-f]{12} only`));
    await eventually(async () => {
      const { status, body } = await auction(agents[0]!, [vms.mover.vmId]);
      expect(status).toBe(200);
      expect(body.seatbid[0].bid[0].price).toBe(2);
    });
    const neighbour = await auction(agents[0]!, [vms.neighbour.vmId]);
    expect(neighbour.body.seatbid[0].bid[0].price).toBe(9);
  });

  it('is not reached from another host over the underlay, nor at its bridge’s own port from its VM', async () => {
    const servedOn = Number(/served on port (\d+)/.exec((await bridgeOf(agents[0]!, vms.mover.vmId)).bidderAddress)![1]);
    const connect = (netns: string, address: string, port: number) =>
      run('ip', ['netns', 'exec', netns, 'timeout', '2', 'bash', '-c', `exec 3<>/dev/tcp/${address}/${port}`]).then(
        () => 'connected',
        () => 'refused',
      );
    // From the other host, at the first host's underlay address: the bridges are not there.
    expect(await connect(hosts[1]!.netns, hosts[0]!.underlay, servedOn)).toBe('refused');
    // From the VM, the bridge's port in the host's namespace by its own number: dropped.
    expect(await connect(labVms.mover!.netns, METADATA_ADDRESS, servedOn)).toBe('refused');
    expect((await bridgeOf(agents[0]!, vms.mover.vmId)).bidder.connected).toBe(true);
  });

  it('moves: the bidder connects again to the same address and answers through its new host’s relay; the old host’s relay no longer asks it', async () => {
    const before = connections[vms.mover.vmId] ?? 0;
    expect(before).toBeGreaterThanOrEqual(1);
    const moved = await migrateVmTo(vms.mover.vmId, agents[1]!.hostId);
    expect(moved.status).toBe(200);
    await lab.moveVm(vms.mover.vmId, hosts[1]!);
    const reconnectedAfterMs = await eventually(async () => expect((await bridgeOf(agents[1]!, vms.mover.vmId))?.bidder.connected).toBe(true), 60_000, 100);
    console.info(`the bidder reached its new host's relay ${reconnectedAfterMs} ms after its VM was plugged in there`);
    expect(connections[vms.mover.vmId]).toBeGreaterThan(before);
    const there = await auction(agents[1]!, [vms.mover.vmId]);
    expect(there.status).toBe(200);
    expect(there.body.seatbid[0].bid[0].price).toBe(2);
    // The old host runs no bridge for it any more, and its relay refuses to name it.
    await eventually(async () => expect(await bridgeOf(agents[0]!, vms.mover.vmId)).toBeUndefined(), 30_000, 200);
    expect((await auction(agents[0]!, [vms.mover.vmId])).status).toBe(403);
    // The neighbour that stayed kept its one connection.
    expect(connections[vms.neighbour.vmId]).toBe(1);
    expect((await auction(agents[0]!, [vms.neighbour.vmId])).body.seatbid[0].bid[0].price).toBe(9);
  });
});
