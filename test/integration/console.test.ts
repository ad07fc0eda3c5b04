import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startConsole, type RunningConsole } from '../../local/console/console-server.ts';
import { projectRoot } from '../../local/processes.ts';
import { startAgent, type RunningAgent } from '../helpers/agents.ts';
import { api, expectOk, uniqueId } from '../helpers/api.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

/** Debian's chromium package; `.ci/run` installs it. */
const CHROMIUM = process.env.STRATOPLANE_CHROMIUM ?? '/usr/bin/chromium';
const screenshots = path.join(projectRoot, 'test-results');

const hasChromium = existsSync(CHROMIUM);
const title = hasChromium ? `web console in headless Chromium (${CHROMIUM})` : `web console: skipped, no Chromium at ${CHROMIUM} (apt-get install chromium, or set STRATOPLANE_CHROMIUM)`;

describe.skipIf(!hasChromium)(title, () => {
  let agents: RunningAgent[] = [];
  let webConsole: RunningConsole;
  let browser: Browser;
  let page: Page;
  let vm: any;

  const vmIn = (hostId: string) => page.locator(`[data-host="${hostId}"] [data-vm="${vm.vmId}"]`);
  const routeAt = (hostId: string) => page.locator(`[data-host="${hostId}"] [data-route="${vm.networkId}/${vm.ip}"]`);

  beforeAll(async () => {
    agents = await Promise.all(['198.51.100.241', '198.51.100.242', '198.51.100.243'].map((address, index) => startAgent(uniqueId(`console${index + 1}`), address)));
    const network = await expectOk(api('POST', '/networks', { name: 'console', cidr: '10.94.0.0/24' }), 201);
    vm = await expectOk(api('POST', '/vms', { name: 'watched', networkId: network.networkId, hostId: agents[0]!.hostId }), 201);
    // A VM of the network on each other host, so every agent is a member and holds the watched VM's endpoint.
    for (const agent of agents.slice(1)) await expectOk(api('POST', '/vms', { name: `peer-${agent.hostId}`, networkId: network.networkId, hostId: agent.hostId }), 201);
    webConsole = await startConsole({ port: 0, apiUrl: inject('apiUrl'), tenantToken: await tenantToken(), operatorToken: await operatorToken(), agents });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
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
    await page.goto(webConsole.url);
    await expect.poll(() => vmIn(home.hostId).count(), { timeout: 20_000 }).toBe(1);
    await expect.poll(() => routeAt(watcher.hostId).getAttribute('data-endpoint', { timeout: 1_000 }).catch(() => null), { timeout: 20_000 }).toBe(home.address);
    expect(await page.locator('#connection').textContent()).toMatch(/^live/);

    await expectOk(api('POST', `/vms/${vm.vmId}/migrate`, { targetHostId: target.hostId }));
    // No reload: the page follows the change as the agents converge.
    await expect.poll(() => vmIn(target.hostId).count(), { timeout: 20_000 }).toBe(1);
    expect(await vmIn(home.hostId).count()).toBe(0);
    for (const agent of [target, watcher]) {
      await expect.poll(() => routeAt(agent.hostId).getAttribute('data-endpoint', { timeout: 1_000 }).catch(() => null), { timeout: 20_000 }).toBe(target.address);
    }
    // The old host runs nothing of the network any more: its agent left it and holds none of its endpoints.
    await expect.poll(() => routeAt(home.hostId).count(), { timeout: 20_000 }).toBe(0);
    expect(await routeAt(watcher.hostId).textContent()).toContain(`${target.address} (${target.hostId})`);
    expect(await page.locator(`[data-vm-row="${vm.vmId}"]`).textContent()).toContain(target.hostId);

    mkdirSync(screenshots, { recursive: true });
    const screenshot = await page.screenshot({ path: path.join(screenshots, 'console-after-migration.png'), fullPage: true });
    expect(screenshot.length).toBeGreaterThan(10_000);
  }, 90_000);
});
