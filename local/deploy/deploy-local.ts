import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { LocalAws } from '../aws/local-aws.ts';
import { projectRoot } from '../processes.ts';
import { fakedResourceTypes, startDeployAws } from './deploy-aws.ts';
import { bootstrap, deploy, synthesize } from './steps.ts';

const usage = `usage: npm run deploy:local [-- --keep] [-- --regions us-east-1,eu-west-1] [-- --context deployment=staging]

Deploys the CDK app with the real cdk CLI (cdk synth, cdk bootstrap, cdk deploy --all) through
CloudFormation into a LocalStack of its own (127.0.0.1, a free port unless --port or
STRATOPLANE_DEPLOY_AWS_PORT), checks that every stack and resource is complete, and prints as its
last line: deployed stacks=<n> resources=<n> seconds=<n> (seconds: the cdk deploy).
  --keep         leave that LocalStack running (its endpoint is printed) until Ctrl-C
  --regions R,R  the app's regions, the first the primary (same as --context regions=R,R);
                 default: the app's default (STRATOPLANE_REGIONS, else AWS_REGION, else us-east-1)
  --context K=V  passed to cdk synth (e.g. deployment=staging, egressOpenCidrs=10.20.0.0/16)
Logs: .local-run/deploy-<pid>/ (cdk.log, localstack.log), kept when something fails.`;

const { values } = parseArgs({
  options: {
    keep: { type: 'boolean', default: false },
    regions: { type: 'string' },
    port: { type: 'string' },
    context: { type: 'string', short: 'c', multiple: true, default: [] },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}

const say = (message: string) => console.log(`[deploy:local] ${message}`);
const portSetting = values.port ?? process.env.STRATOPLANE_DEPLOY_AWS_PORT;
const port = portSetting ? Number(portSetting) : undefined;
if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
  console.error(`deploy:local: not a port: ${portSetting}\n\n${usage}`);
  process.exit(2);
}
const context = [...values.context, ...(values.regions ? [`regions=${values.regions}`] : [])];
const region = process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
const workDir = path.join(projectRoot, '.local-run', `deploy-${process.pid}`);
mkdirSync(workDir, { recursive: true });

let aws: LocalAws | undefined;
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  await aws?.stop();
  if (code === 0) rmSync(workDir, { recursive: true, force: true });
  else console.error(`deploy:local: logs kept in ${path.relative(projectRoot, workDir)}/`);
  process.exit(code);
};
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(values.keep ? 0 : 130));

try {
  let started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
  const localStackLog = path.join(workDir, 'localstack.log');
  const logFile = path.join(workDir, 'cdk.log');
  // The synth runs offline, while LocalStack starts.
  const [local, assembly] = await Promise.all([
    startDeployAws({ port, log: (line) => say(line), logFile: localStackLog }).then((startedAws) => {
      aws = startedAws;
      say(`LocalStack with CloudFormation on ${startedAws.endpoint} (${elapsed()})`);
      return startedAws;
    }),
    synthesize({ region, logFile }, path.join(workDir, 'cdk.out'), context).then((synthesized) => {
      say(`cdk synth: ${synthesized.stacks.map((stack) => `${stack.stackName} (${stack.resourceCount} resources)`).join(', ')} (${elapsed()})`);
      return synthesized;
    }),
  ]);
  const target = { endpoint: local.endpoint, region, logFile };
  started = Date.now();
  await bootstrap(target, assembly);
  say(`cdk bootstrap (${elapsed()})`);
  const result = await deploy(target, assembly);
  const faked = fakedResourceTypes(localStackLog);
  if (faked.length) throw new Error(`LocalStack has no CloudFormation provider for ${faked.join(', ')}: it deployed placeholders`);
  if (values.keep) say(`LocalStack stays on ${local.endpoint} (AWS_ENDPOINT_URL=${local.endpoint}); Ctrl-C stops it`);
  console.log(`deployed stacks=${result.stacks} resources=${result.resources} seconds=${result.seconds}`);
  if (!values.keep) await stop(0);
} catch (error) {
  console.error(`deploy:local: ${(error as Error).message}`);
  await stop(1);
}
