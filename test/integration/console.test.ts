import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startConsole, type RunningConsole } from '../../local/console/console-server.ts';
import { projectRoot } from '../../local/processes.ts';
import { startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, createVmOn, expectOk, migrateVmTo, uniqueId } from '../helpers/api.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

/** Debian's chromium package; `.ci/run` installs it. */
const CHROMIUM = process.env.STRATOPLANE_CHROMIUM ?? '/usr/bin/chromium';
const screenshots = path.join(projectRoot, 'test-results');

const hasChromium = existsSync(CHROMIUM);
const title = hasChromium
  ? `web console in headless Chromium (${CHROMIUM})`
  : `web console: skipped, no Chromium at ${CHROMIUM} (apt-get install chromium, or set STRATOPLANE_CHROMIUM)`;

describe.skipIf(!hasChromium)(title, () => {
  let agents: RunningAgent[] = [];
  let webConsole: RunningConsole;
  let browser: Browser;
  let page: Page;
  let vm: any;
  /** Tenant B's VM and network: same CIDR as tenant A's, on a host A also runs a VM on. */
  let theirs: any;
  const [tenantA, tenantB] = [uniqueId('console-a'), uniqueId('console-b')];

  const vmIn = (hostId: string, vmId = vm.vmId) => page.locator(`[data-host="${hostId}"] [data-vm="${vmId}"]`);
  const routeAt = (hostId: string, of = vm) => page.locator(`[data-host="${hostId}"] [data-route="${of.networkId}/${of.ip}"]`);
  const view = (name: string) => page.goto(`${webConsole.url}?view=${name}`);
  /** What the page shows as text, and the attributes it carries (ids live there too). */
  // biome-ignore lint/performance/useDomNodeTextContent: a Playwright locator, not a DOM node: innerText is the text as rendered, which is what the test reads.
  const shown = async () => `${await page.locator('body').innerText()}\n${await page.locator('body').innerHTML()}`;

  beforeAll(async () => {
    agents = await Promise.all(
      ['198.51.100.241', '198.51.100.242', '198.51.100.243'].map((address, index) => startAgent(uniqueId(`console${index + 1}`), address)),
    );
    const network = await expectOk(api('POST', '/networks', { name: 'console', cidr: '10.94.0.0/24' }, tenantToken(tenantA)), 201);
    vm = await expectOk(createVmOn({ name: 'watched', networkId: network.networkId, hostId: agents[0]!.hostId }, tenantA), 201);
    // A VM of the network on each other host, so every agent is a member and holds the watched VM's endpoint.
    for (const agent of agents.slice(1))
      await expectOk(createVmOn({ name: `peer-${agent.hostId}`, networkId: network.networkId, hostId: agent.hostId }, tenantA), 201);
    // Tenant B: the same range, on the watcher's host, so that host's agent holds B's route beside A's.
    const networkB = await expectOk(api('POST', '/networks', { name: 'console-b', cidr: '10.94.0.0/24' }, tenantToken(tenantB)), 201);
    theirs = await expectOk(createVmOn({ name: 'b-secret-vm', networkId: networkB.networkId, hostId: agents[2]!.hostId }, tenantB), 201);
    webConsole = await startConsole({
      port: 0,
      apiUrl: inject('apiUrl'),
      views: { a: await tenantToken(tenantA), b: await tenantToken(tenantB), operator: await operatorToken() },
      agents,
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await webConsole?.close();
    await Promise.all(agents.map((agent) => agent.process.stop()));
  });

  it('draws which VM runs on which host, and the endpoint every agent holds for it, following a migration live', async () => {
    const [home, target, watcher] = agents as [RunningAgent, RunningAgent, RunningAgent];
    await view('a');
    await expect.poll(() => vmIn(home.hostId).count(), { timeout: 20_000 }).toBe(1);
    await expect
      .poll(
        () =>
          routeAt(watcher.hostId)
            .getAttribute('data-endpoint', { timeout: 1_000 })
            .catch(() => null),
        { timeout: 20_000 },
      )
      .toBe(home.address);
    expect(await page.locator('#connection').textContent()).toMatch(/^live/);

    await expectOk(migrateVmTo(vm.vmId, target.hostId));
    // No reload: the page follows the change as the agents converge.
    await expect.poll(() => vmIn(target.hostId).count(), { timeout: 20_000 }).toBe(1);
    expect(await vmIn(home.hostId).count()).toBe(0);
    for (const agent of [target, watcher]) {
      await expect
        .poll(
          () =>
            routeAt(agent.hostId)
              .getAttribute('data-endpoint', { timeout: 1_000 })
              .catch(() => null),
          { timeout: 20_000 },
        )
        .toBe(target.address);
    }
    // The old host runs nothing of the network any more: its agent left it and holds none of its endpoints.
    await expect.poll(() => routeAt(home.hostId).count(), { timeout: 20_000 }).toBe(0);
    expect(await routeAt(watcher.hostId).textContent()).toContain(`${target.address} (${target.hostId})`);
    expect(await page.locator(`[data-vm-row="${vm.vmId}"]`).textContent()).toContain(target.hostId);

    mkdirSync(screenshots, { recursive: true });
    const screenshot = await page.screenshot({ path: path.join(screenshots, 'console-after-migration.png'), fullPage: true });
    expect(screenshot.length).toBeGreaterThan(10_000);
  }, 90_000);

  it("shows a tenant only what is theirs: never another tenant's VM, route or share of a host", async () => {
    const watcher = agents[2]!;
    // The watcher's agent holds B's route: the console must not pass it on to A.
    await expect.poll(async () => (await watcher.status()).routes.some((route: any) => route.vmId === theirs.vmId), { timeout: 20_000 }).toBe(true);
    await view('a');
    await expect.poll(() => routeAt(watcher.hostId).count(), { timeout: 20_000 }).toBe(1);
    expect(await page.locator('#viewer').textContent()).toContain(`as tenant ${tenantA}`);
    const text = await shown();
    for (const secret of [theirs.vmId, theirs.name, theirs.networkId, tenantB, 'console-b']) expect(text).not.toContain(secret);
    expect(await page.locator(`[data-route^="${theirs.networkId}/"]`).count()).toBe(0);
    expect(await page.locator(`[data-vm="${theirs.vmId}"]`).count()).toBe(0);
    // The same range in both networks: B's address may be one of A's too, but never as B's.
    const ipsOfA = (await expectOk(api('GET', '/vms', undefined, tenantToken(tenantA)))).vms.map((mine: any) => mine.ip);
    if (!ipsOfA.includes(theirs.ip)) expect(text).not.toContain(theirs.ip);
    // Host counts are A's own: the watcher's host runs one VM of A's (and B's, which A is not told of).
    expect(await page.locator(`[data-host-meta="${watcher.hostId}"]`).textContent()).toContain('1 of your VMs');
    // Each route names its network.
    expect(await routeAt(watcher.hostId).locator('td.network').textContent()).toContain(vm.networkId);

    // And B sees its VM, and none of A's.
    await view('b');
    await expect.poll(() => vmIn(watcher.hostId, theirs.vmId).count(), { timeout: 20_000 }).toBe(1);
    const textB = await shown();
    for (const secret of [vm.vmId, 'watched', vm.networkId, tenantA]) expect(textB).not.toContain(secret);
    expect(await page.locator(`[data-host-meta="${watcher.hostId}"]`).textContent()).toContain('1 of your VMs');
  }, 60_000);

  it("shows the operator everything: both tenants' VMs and routes, apart by network, and whole host counts", async () => {
    const watcher = agents[2]!;
    await view('operator');
    await expect.poll(() => vmIn(watcher.hostId, theirs.vmId).count(), { timeout: 20_000 }).toBe(1);
    expect(await page.locator('#viewer').textContent()).toContain('as operator');
    expect(await vmIn(agents[1]!.hostId).count()).toBe(1);
    await expect.poll(() => routeAt(watcher.hostId, theirs).count(), { timeout: 20_000 }).toBe(1);
    expect(await routeAt(watcher.hostId).count()).toBe(1);
    // Two networks of one range: each route row names its own.
    expect(await routeAt(watcher.hostId, theirs).locator('td.network').textContent()).toContain(`${theirs.networkId} · tenant ${tenantB}`);
    expect(await routeAt(watcher.hostId).locator('td.network').textContent()).toContain(`${vm.networkId} · tenant ${tenantA}`);
    const text = await shown();
    for (const both of [theirs.name, 'watched', tenantA, tenantB]) expect(text).toContain(both);
    // The watcher's host runs A's peer and B's VM.
    expect(await page.locator(`[data-host-meta="${watcher.hostId}"]`).textContent()).toMatch(/ 2\/32 VMs$/);
  }, 60_000);
});
