import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { projectRoot } from '../../local/processes.ts';
import { startAgent, type RunningAgent } from '../helpers/agents.ts';
import { uniqueId } from '../helpers/api.ts';
import { operatorToken, tenantToken } from '../helpers/tokens.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('stratoplane CLI', () => {
  let token: string;
  let tenantId: string;
  let dir: string;
  let awayAgent: RunningAgent;

  /** Runs `npx stratoplane …` as a user would: the real launcher, a process of its own. */
  const cli = (args: string[], apiUrl = inject('apiUrl'), as = token): Promise<Run> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [path.join(projectRoot, 'bin/stratoplane.mjs'), ...args],
        { env: { ...process.env, STRATOPLANE_API_URL: apiUrl, STRATOPLANE_TOKEN: as }, cwd: tmpdir() },
        (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const json = async (args: string[], apiUrl?: string, as?: string) => {
    const run = await cli([...args, '--json'], apiUrl, as);
    if (run.code !== 0) throw new Error(`${args.join(' ')}: exit ${run.code}: ${run.stderr}`);
    return JSON.parse(run.stdout);
  };

  beforeAll(async () => {
    tenantId = uniqueId('cli');
    token = await tenantToken(tenantId);
    dir = await mkdtemp(path.join(tmpdir(), 'cli-'));
    awayAgent = await startAgent(uniqueId('cli-away'), '198.51.100.221', 8, inject('secondRegion'));
  }, 60_000);

  afterAll(async () => {
    await awayAgent?.process.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates, lists as a table, shows and deletes, with --json for scripts', async () => {
    const network = await json(['networks', 'create', '--name', 'cli', '--cidr', '10.66.0.0/24', '--placement', 'pack']);
    expect(network).toMatchObject({ name: 'cli', cidr: '10.66.0.0/24', placement: 'pack' });
    const unknown = await cli(['networks', 'create', '--name', 'cli', '--cidr', '10.67.0.0/24', '--placement', 'huddle']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('placement');
    const table = await cli(['networks', 'list']);
    expect(table.code).toBe(0);
    expect(table.stdout.split('\n')[0]).toMatch(/^NETWORKID\s+NAME\s+CIDR\s+PLACEMENT\s+REGION\s+PROJECTID$/);
    expect(table.stdout).toMatch(new RegExp(`^${network.networkId}\\s+cli\\s+10\\.66\\.0\\.0/24\\s+pack\\s`, 'm'));
    const shown = await cli(['networks', 'show', network.networkId]);
    expect(shown.stdout).toMatch(new RegExp(`^networkId\\s+${network.networkId}$`, 'm'));
    expect(await cli(['networks', 'delete', network.networkId])).toMatchObject({ code: 0, stdout: `deleted network ${network.networkId}\n` });
  });

  it('exits with codes scripts can rely on, and says what to do', async () => {
    const missing = await cli(['vms', 'show', 'vm-000000000000']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('GET /vms/vm-000000000000: 404 vm vm-000000000000 not found');
    const usage = await cli(['vms', 'create', '--network', 'net-x']);
    expect(usage).toMatchObject({ code: 2, stderr: 'stratoplane: --name is required\n' });
    expect(await cli(['vms', 'create', '--name', 'x', '--network', 'net-x', '--metadata', 'no-value'])).toMatchObject({
      code: 2,
      stderr: 'stratoplane: --metadata "no-value": KEY=VALUE\n',
    });
    expect((await cli(['vms', 'launch'])).code).toBe(2);
    const unreachable = await cli(['vms', 'list'], 'http://127.0.0.1:1/v1');
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toContain('and that the control plane runs (npm start)');
    token = 'not-a-token';
    const refused = await cli(['vms', 'list']);
    token = await tenantToken(tenantId);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('set --token / STRATOPLANE_TOKEN');
  });

  it('uploads an image in parts with progress, then launches it in another region, waiting through the copy', async () => {
    const file = path.join(dir, 'disk.img');
    await writeFile(file, randomBytes(9 * 1024 * 1024 + 7));
    const upload = await cli(['images', 'upload', file, '--name', 'cli-image', '--wait', '--json']);
    expect(upload.code).toBe(0);
    expect(upload.stderr).toContain('uploaded 2/2 parts (100%)');
    const image = JSON.parse(upload.stdout);
    expect(image).toMatchObject({ name: 'cli-image', state: 'available', sizeBytes: 9 * 1024 * 1024 + 7 });

    const away = inject('secondRegion');
    const network = await json(['networks', 'create', '--name', 'away', '--cidr', '10.67.0.0/24'], away.apiUrl);
    // The image's record may take a moment to reach the other region through the global table.
    let launch: Run;
    for (let attempt = 0; ; attempt++) {
      // On this run's live host of that region (an operator names it): hosts of earlier tests are registered there too, their agents gone.
      launch = await cli(
        [
          'vms',
          'create',
          '--name',
          'from-afar',
          '--network',
          network.networkId,
          '--image',
          image.imageId,
          '--host',
          awayAgent.hostId,
          '--tenant',
          tenantId,
          '--metadata',
          'role=web',
          '--metadata',
          'motd=a=b',
          '--wait',
          '--json',
        ],
        away.apiUrl,
        await operatorToken(),
      );
      if (launch.code === 0 || attempt === 20 || !launch.stderr.includes('not found')) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(launch.code, launch.stderr).toBe(0);
    expect(launch.stderr).toContain(`: provisioning (waiting for image ${image.imageId} to be copied from ${inject('region')} to ${away.region})`);
    expect(JSON.parse(launch.stdout)).toMatchObject({
      state: 'running',
      imageId: image.imageId,
      region: away.region,
      attributes: { role: 'web', motd: 'a=b' },
    });
    const hosts = await cli(['vms', 'known-hosts', JSON.parse(launch.stdout).vmId], away.apiUrl);
    expect(hosts.code).toBe(1);
    expect(hosts.stderr).toContain('has not published host keys yet');
  }, 90_000);

  it('migrates a VM and waits until every host that needs its new endpoint holds it, or says which host it still waits for', async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name, i) => startAgent(uniqueId(`cli-mig-${name}`), `198.51.100.${231 + i}`, 4)));
    try {
      const network = await json(['networks', 'create', '--name', 'moving', '--cidr', '10.68.0.0/24']);
      // Tenants do not pick hosts: the CLI passes on the API's refusal, naming the scope.
      const picky = await cli(['vms', 'create', '--name', 'picky', '--network', network.networkId, '--host', a!.hostId]);
      expect(picky.code).toBe(1);
      expect(picky.stderr).toContain('POST /vms: 403 hostId: needs scope operator');
      // An operator places them, for the tenant.
      const operator = await operatorToken();
      const mover = await json(
        ['vms', 'create', '--name', 'mover', '--network', network.networkId, '--host', a!.hostId, '--tenant', tenantId],
        undefined,
        operator,
      );
      await json(['vms', 'create', '--name', 'peer', '--network', network.networkId, '--host', c!.hostId, '--tenant', tenantId], undefined, operator);

      const migrated = await cli(['vms', 'migrate', mover.vmId, '--to', b!.hostId, '--wait'], undefined, operator);
      expect(migrated.code).toBe(0);
      // Host a ran only the mover: after the move, b (the mover) and c (its peer) need the endpoint.
      expect(migrated.stderr).toContain(`vm ${mover.vmId} now on ${b!.hostId}: tunnel endpoint ${b!.address} (version 2)`);
      expect(migrated.stderr).toContain('held by 2/2 hosts');
      expect(migrated.stdout.trim()).toBe(
        `vm ${mover.vmId} now on ${b!.hostId}: tunnel endpoint ${b!.address} (version 2); every host that needs it holds it (2)`,
      );
      expect((await b!.status()).routes).toContainEqual(expect.objectContaining({ vmId: mover.vmId, endpoint: b!.address, version: 2 }));

      // With the peer's agent down, nobody acknowledges for its host: the wait gives up with exit code 4, naming it.
      await c!.process.stop();
      const stuck = await cli(['vms', 'migrate', mover.vmId, '--to', a!.hostId, '--wait', '--timeout', '3'], undefined, operator);
      expect(stuck.code).toBe(4);
      expect(stuck.stderr).toContain(`still not done after 3 s: held by 1/2 hosts (waiting for ${c!.hostId})`);
      expect(stuck.stderr).toContain(`look again later with \`vms convergence ${mover.vmId}\``);
      const convergence = await json(['vms', 'convergence', mover.vmId]);
      expect(convergence).toMatchObject({ hostId: a!.hostId, hostsTotal: 2, hostsConverged: 1, converged: false, pendingHostIds: [c!.hostId] });
    } finally {
      await Promise.all([a, b, c].map((agent) => agent!.process.stop()));
    }
  }, 90_000);
});
