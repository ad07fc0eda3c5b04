import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../processes.ts';

/** The CLI pinned in package.json (aws-cdk 2.x), run by path: no npx, nothing fetched. */
const cdkBin = path.join(projectRoot, 'node_modules', 'aws-cdk', 'bin', 'cdk');

export class CdkCommandError extends Error {}

export interface CdkTarget {
  /** The emulator every AWS call of the CLI goes to (AWS_ENDPOINT_URL). */
  endpoint: string;
  region: string;
  /** Where the CLI's output goes, appended; a failure quotes its end. */
  logFile: string;
}

/**
 * The CLI's environment: the emulator's endpoint and its test credentials, and nothing that would
 * send a request anywhere else (no notices, telemetry or version check, no instance metadata
 * lookup, no profile).
 */
export function cdkEnvironment(target: CdkTarget): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^AWS_/.test(name) || name === 'CDK_DEFAULT_ACCOUNT' || name === 'CDK_DEFAULT_REGION') delete env[name];
  }
  return {
    ...env,
    AWS_ENDPOINT_URL: target.endpoint,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: target.region,
    AWS_DEFAULT_REGION: target.region,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
    CDK_DISABLE_VERSION_CHECK: '1',
  };
}

/**
 * Runs `cdk <args>` in the project (its cdk.json names the app) against the emulator, with its
 * output appended to the log file; resolves when it exits 0, else throws with the log's end.
 */
export async function cdk(target: CdkTarget, args: string[]): Promise<void> {
  mkdirSync(path.dirname(target.logFile), { recursive: true });
  // Telemetry is off by CDK_DISABLE_CLI_TELEMETRY; not by --no-version-reporting, which would also
  // drop the AWS::CDK::Metadata resource and make the template differ from what operators deploy.
  const fullArgs = [...args, '--no-notices', '--no-color'];
  appendFileSync(target.logFile, `\n=== ${new Date().toISOString()} cdk ${fullArgs.join(' ')}\n`);
  const child = spawn(process.execPath, [cdkBin, ...fullArgs], {
    cwd: projectRoot,
    env: cdkEnvironment(target),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const write = (chunk: Buffer) => appendFileSync(target.logFile, chunk);
  child.stdout!.on('data', write);
  child.stderr!.on('data', write);
  const code = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (exitCode, signal) => resolve(exitCode ?? (signal ? 128 : 1)));
  });
  if (code !== 0) {
    throw new CdkCommandError(`cdk ${args[0]} failed (exit ${code}); the end of ${path.relative(projectRoot, target.logFile)}:\n${tail(target.logFile, 40)}`);
  }
}

function tail(file: string, lines: number): string {
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}
