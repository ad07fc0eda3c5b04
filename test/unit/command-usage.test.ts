import { execFile } from 'node:child_process';
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

describe.concurrent('every command prints its usage when asked, and refuses what it does not know', () => {
  it('issue-token', async () => {
    for (const flag of ['--help', '-h']) {
      const help = await run('ops/issue-token.ts', [flag]);
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
});
