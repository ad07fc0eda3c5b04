import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../local/processes.ts';

/** Runs one of the project's commands as its npm script or bin does (node + tsx), with no AWS settings. */
function run(entry: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_') && !name.startsWith('STRATOPLANE_')));
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', entry, ...args],
      {
        cwd: projectRoot,
        env: { ...env, AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
        timeout: 30_000,
      },
      (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at /);

// Each case starts node with tsx, a second or more on a busy machine.
describe.concurrent('every command prints its usage when asked, and refuses what it does not know', { timeout: 60_000 }, () => {
  it('issue-token', async () => {
    for (const help of await Promise.all(['--help', '-h'].map((flag) => run('ops/issue-token.ts', [flag])))) {
      expect(help).toMatchObject({ code: 0, stderr: '' });
      expect(help.stdout).toMatch(/^usage: npm run -s issue-token -- \(--tenant ID/);
    }
    const unknown = await run('ops/issue-token.ts', ['--tenant', 'acme', '--bogus']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^issue-token: Unknown option '--bogus'/);
    expect(unknown.stderr).toContain('usage: npm run -s issue-token');
    noStackTrace(unknown.stderr);
  });

  it('issue-token says the region is missing, and how to give it', async () => {
    const missing = await run('ops/issue-token.ts', ['--tenant', 'acme']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      'issue-token: the AWS region is not set: export AWS_REGION (and AWS_ENDPOINT_URL for a local AWS), or run it in the folder where `npm start` runs, to use its local AWS\n',
    );
  });

  it('host-agent', async () => {
    for (const help of await Promise.all(['--help', '-h'].map((flag) => run('host-agent/main.ts', [flag])))) {
      expect(help).toMatchObject({ code: 0, stderr: '' });
      expect(help.stdout).toMatch(/^usage: host-agent --host-id ID --address IPV4 --api-url URL/);
    }
    const unknown = await run('host-agent/main.ts', ['--host', 'host-2']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^host-agent: Unknown option '--host'/);
    expect(unknown.stderr).toContain('usage: host-agent');
    noStackTrace(unknown.stderr);
  });

  it('host-agent exits 1 at start without an AWS region, in one line saying what to do', async () => {
    const dir = path.join(tmpdir(), `usage-agent-${process.pid}`);
    const started = await run('host-agent/main.ts', [
      '--host-id',
      'host-2',
      '--address',
      '192.0.2.12',
      '--api-url',
      'http://127.0.0.1:3000/v1',
      '--token-file',
      __filename,
      '--control-socket',
      path.join(dir, 'agent.sock'),
      '--vm-dir',
      path.join(dir, 'vms'),
    ]);
    expect(started).toMatchObject({ code: 1, stdout: '' });
    expect(started.stderr).toBe(
      '[agent host-2] cannot start: the AWS region is not set: export AWS_REGION (and AWS_ENDPOINT_URL for a local AWS); beside `npm start`, `npm run agent -- --host host-2` gives it all\n',
    );
  });

  it('stratoplane, for every resource and action', async () => {
    const [top, short, vms, create] = await Promise.all([
      run('cli/main.ts', ['--help']),
      run('cli/main.ts', ['-h']),
      run('cli/main.ts', ['vms', '--help']),
      run('cli/main.ts', ['vms', 'create', '-h']),
    ]);
    for (const help of [top, short]) {
      expect(help).toMatchObject({ code: 0, stderr: '' });
      expect(help.stdout).toMatch(/^usage: stratoplane <resource> <action> \[options\] \[--json\]\n {2}stratoplane /);
      expect(help.stdout).toContain('\n  stratoplane networks create --name NAME --cidr CIDR');
    }
    expect(vms).toMatchObject({ code: 0, stderr: '' });
    expect(vms.stdout).toMatch(/^usage: stratoplane vms <action>/);
    expect(vms.stdout).toContain('  stratoplane vms migrate <id>');
    expect(vms.stdout).not.toContain('stratoplane disks');
    expect(create).toMatchObject({ code: 0, stderr: '' });
    expect(create.stdout).toMatch(/^usage: stratoplane vms create --name NAME --network ID/);
  });

  it('stratoplane refuses unknown resources, actions and options, saying what there is', async () => {
    const [resource, action, none, option] = await Promise.all([
      run('cli/main.ts', ['vm', 'list']),
      run('cli/main.ts', ['vms', 'launch']),
      run('cli/main.ts', ['disks']),
      run('cli/main.ts', ['vms', 'list', '--bogus']),
    ]);
    expect(resource.code).toBe(2);
    expect(resource.stderr).toMatch(
      /^stratoplane: unknown resource: vm\n {2}the resources: .*networks, vms, disks, images, service-accounts.*; see `stratoplane --help`\n$/,
    );
    expect(action.code).toBe(2);
    expect(action.stderr).toMatch(/^stratoplane: unknown action: vms launch\n {2}actions: list, show, create, .*; see `stratoplane vms --help`\n$/);
    expect(none).toMatchObject({ code: 2, stderr: expect.stringMatching(/^stratoplane: disks needs an action\n/) });
    expect(option).toMatchObject({ code: 2, stderr: "stratoplane: Unknown option '--bogus'\n  usage: stratoplane vms list\n" });
  });

  it('npm run agent', async () => {
    const [help, unknown] = await Promise.all([run('local/agent-command.ts', ['--help']), run('local/agent-command.ts', ['--hots', 'host-2'])]);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^usage: npm run agent -- --host ID \| --list\n/);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^npm run agent: Unknown option '--hots'/);
    noStackTrace(unknown.stderr);
  });
});
