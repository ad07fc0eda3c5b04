import { rmSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startLocalAws, type LocalAws } from '../../local/aws/local-aws.ts';
import { projectRoot, startTsProcess, type Started } from '../../local/processes.ts';
import type { RunnerInfo } from '../../local/runner.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    apiUrl: string;
    awsEndpoint: string;
    region: string;
    resources: Record<string, string>;
  }
}

let aws: LocalAws | undefined;
let runner: Started<RunnerInfo> | undefined;
let stateDir: string | undefined;

/** One local AWS and one control plane for the whole integration run; each file makes its own hosts and networks. */
export async function setup(project: TestProject) {
  aws = await startLocalAws({ log: (line) => console.error(line) });
  // Inside the project: function bundles resolve the AWS SDK from its node_modules, as on Lambda's runtime.
  stateDir = path.join(projectRoot, '.local-run', `test-${process.pid}`);
  runner = await startTsProcess<RunnerInfo>({
    entry: 'local/runner.ts',
    env: {
      AWS_ENDPOINT_URL: aws.endpoint,
      AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
      AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'test',
      AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'test',
      STRATOPLANE_STATE_DIR: stateDir,
    },
    readyPrefix: 'STRATOPLANE_RUNNER_READY',
    timeoutMs: 180_000,
    onStderr: (line) => {
      if (process.env.STRATOPLANE_TEST_VERBOSE || /failed|error|exhausted/i.test(line)) console.error(line);
    },
  });
  // Test workers inherit these, so code under test that builds clients from the environment finds the local AWS.
  Object.assign(process.env, { AWS_ENDPOINT_URL: aws.endpoint, AWS_REGION: runner.info.region, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' });
  project.provide('apiUrl', runner.info.apiUrl);
  project.provide('awsEndpoint', runner.info.endpoint);
  project.provide('region', runner.info.region);
  project.provide('resources', runner.info.resources);
}

export async function teardown() {
  await runner?.stop();
  await aws?.stop();
  if (stateDir) rmSync(stateDir, { recursive: true, force: true });
}
