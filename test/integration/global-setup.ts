import { rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalStack, type LocalStack } from '../../local/local-stack.ts';
import { projectRoot } from '../../local/processes.ts';
import { releaseRunLock, takeRunLock } from '../../local/run-lock.ts';
import { routesOf } from '../../local/api-gateway.ts';
import { readTemplate } from '../../local/template.ts';
import type { IamReport } from '../../local/aws/iam-check.ts';
import { KMSClient } from '@aws-sdk/client-kms';
import { deploymentFromEnvironment, keyAlias } from '#events/naming.ts';
import { issueApiToken } from '#tokens/api-tokens.ts';
import { KmsJwsSigner } from '#tokens/kms-signer.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    apiUrl: string;
    awsEndpoint: string;
    region: string;
    resources: Record<string, string>;
    /** Every route of the synthesized API, as `METHOD /path/{param}`. */
    routes: string[];
    /** The second region's control plane: its own API, sharing the global table through the replicator. */
    secondRegion: { apiUrl: string; region: string; resources: Record<string, string> };
    /**
     * Faults and counts, asked of this process (it owns the runners and the proxy before the
     * emulator): `POST <controlUrl>/kill-runner` SIGKILLs the first region's runner,
     * `POST /restart-runner` starts it again, `POST /aws-outage?ms=N` makes AWS unreachable for N
     * ms, and `GET /aws-calls` answers every AWS call so far, added up by kind.
     */
    controlUrl: string;
    /** False when AWS_ENDPOINT_URL named an emulator of its own: no proxy stands before it, so no outages and no counts. */
    awsProxied: boolean;
    /** The first region's synthesized template, as its runner runs it. */
    templateFile: string;
  }
}

let stack: LocalStack | undefined;
let control: http.Server | undefined;
const stateDir = path.join(projectRoot, '.local-run', `test-${process.pid}`);

/** One local AWS and one control plane for the whole integration run; each file makes its own hosts and networks. */
export async function setup(project: TestProject) {
  await takeRunLock();
  stack = await startLocalStack({
    agentCount: 0,
    // Two regions, as the control plane runs on AWS: every test uses the first; cross-region tests both.
    regions: ['us-east-1', 'eu-west-1'],
    awsProxy: true,
    stateDir,
    log: (line) => {
      if (process.env.STRATOPLANE_TEST_VERBOSE) return console.error(line);
      // Functions log JSON: only their errors matter here (fault tests make many warnings on purpose).
      if (line.startsWith('{')) return void (line.includes('"level":"ERROR"') && console.error(line));
      // [local-aws] lines: the one-time LocalStack install says what it is doing.
      if (/failed|error|exhausted|^\[local-aws\]/i.test(line)) console.error(line);
    },
  });
  const { runner, aws } = stack;
  // Test workers inherit these, so code under test that builds clients from the environment finds the local AWS.
  Object.assign(process.env, { AWS_ENDPOINT_URL: aws.endpoint, AWS_REGION: runner.region, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  project.provide('apiUrl', runner.apiUrl);
  project.provide('awsEndpoint', aws.endpoint);
  project.provide('region', runner.region);
  project.provide('resources', runner.resources);
  project.provide('templateFile', runner.templateFile);
  const second = stack.runners[1]!;
  project.provide('secondRegion', { apiUrl: second.apiUrl, region: second.region, resources: second.resources });
  const template = readTemplate(runner.templateFile);
  project.provide(
    'routes',
    routesOf(template).map((route) => `${route.method} ${route.resourcePath}`),
  );
  await raiseTestTenantQuotas(runner.apiUrl, aws.endpoint, runner.region);

  // Test files run in workers; the runner is a child of this process, so faults are asked for here.
  const proxy = stack.aws.proxy;
  project.provide('awsProxied', proxy !== undefined);
  control = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://control');
    if (request.method === 'GET' && url.pathname === '/aws-calls' && proxy) {
      return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(proxy.snapshot()));
    }
    if (request.method === 'GET' && url.pathname === '/iam-report' && proxy) {
      return void response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(proxy.iamReport()));
    }
    if (request.method === 'POST' && url.pathname === '/aws-outage' && proxy) {
      proxy.outage(Number(url.searchParams.get('ms') ?? 5000));
      return void response.writeHead(204).end();
    }
    const action = request.method === 'POST' ? { '/kill-runner': stack!.killRunner, '/restart-runner': stack!.restartRunner }[url.pathname] : undefined;
    if (!action) return void response.writeHead(404).end();
    action().then(
      () => response.writeHead(204).end(),
      (error: Error) => response.writeHead(500).end(error.message),
    );
  });
  await new Promise<void>((resolve) => control!.listen(0, '127.0.0.1', resolve));
  project.provide('controlUrl', `http://127.0.0.1:${(control.address() as AddressInfo).port}`);
}

/**
 * The shared test tenant holds what every file makes (over 60 VMs and 50 networks in a run), past
 * the default quotas: an operator raises its limits, as one would for a large tenant. Quota tests
 * use tenants of their own.
 */
async function raiseTestTenantQuotas(apiUrl: string, endpoint: string, region: string): Promise<void> {
  const signer = new KmsJwsSigner(
    new KMSClient({ endpoint, region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
    keyAlias('api-tokens', deploymentFromEnvironment()),
  );
  const { token } = await issueApiToken(signer, { subject: 'operator:test-setup', scopes: ['operator'], ttlSeconds: 600 });
  const response = await fetch(`${apiUrl}/quotas/test-tenant`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ vms: 100_000, disks: 100_000, diskGiB: 100_000_000, networks: 100_000 }),
  });
  if (!response.ok) throw new Error(`raising the test tenant's quotas: ${response.status} ${await response.text()}`);
}

export async function teardown() {
  control?.close();
  const report = stack?.aws.proxy?.iamReport();
  await stack?.stop();
  rmSync(stateDir, { recursive: true, force: true });
  releaseRunLock();
  if (report) checkIam(report);
}

/**
 * The run's IAM findings (local/aws/iam-check.ts): written to .local-run/iam-report.json, summed
 * up here. A call a function's or agent's role would not allow on AWS fails the run (unless a
 * test asked for it, to prove the check); grants no call used are only reported.
 */
function checkIam(report: IamReport): void {
  const file = path.join(projectRoot, '.local-run', 'iam-report.json');
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  const refused = report.refused.filter((refusal) => !refusal.expected);
  const unused = report.unusedGrants.reduce((sum, principal) => sum + principal.unused.length, 0);
  console.error(
    `IAM (${report.mode}): ${refused.length} refused call kind(s), ${report.refused.length - refused.length} refused on purpose by tests; ` +
      `${unused} grant(s) of ${report.unusedGrants.length} principal(s) no call used, ${report.idlePrincipals.length} principal(s) made no call; report in ${path.relative(projectRoot, file)}`,
  );
  // The principals with the most grants no call used (the file has them all).
  for (const { principal, calls, unused } of [...report.unusedGrants].sort((a, b) => b.unused.length - a.unused.length).slice(0, 10))
    console.error(`  ${principal} (${calls} calls) never used: ${[...new Set(unused.map((grant) => grant.action))].join(' ')}`);
  for (const error of report.errors) console.error(`IAM check could not evaluate: ${error}`);
  if (refused.length > 0 || report.errors.length > 0) {
    // Vitest only logs a teardown's error: the exit code is what fails the run.
    process.exitCode = 1;
    const lines = refused.map(
      (refusal) => `  ${refusal.principal}: ${refusal.call} needs ${refusal.action} on ${refusal.resource} (${refusal.decision}, ${refusal.count}x)`,
    );
    throw new Error(`calls their roles would not allow on AWS:\n${lines.join('\n')}${report.errors.length > 0 ? `\n${report.errors.join('\n')}` : ''}`);
  }
}
