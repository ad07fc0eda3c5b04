import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { type BundlingOptions, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { bundleFingerprint } from '../bundle-fingerprint.ts';
import { LogGroup, RetentionDays, type ILogGroup } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { environmentOf, functionEnvironment, type FunctionSetting } from '#events/function-environment.ts';
import { acknowledge, acknowledgeWildcards } from '../nag.ts';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface ControlPlaneFunctionProps {
  /** Handler source, relative to the project root, e.g. `functions/compute/api/create-vm.ts`. */
  entry: string;
  /** What it reads through functions/platform/env.ts (events/function-environment.ts). */
  settings?: Partial<Record<FunctionSetting, string>>;
  timeout?: Duration;
  memorySize?: number;
  /** A log group shared with other functions (each log line names its function); its own otherwise. */
  logGroup?: ILogGroup;
  /** Concurrency set aside for this function, which is also the most it may use. */
  reservedConcurrentExecutions?: number;
}

/** How every function is bundled (esbuild through CDK). */
const BUNDLING = {
  format: OutputFormat.ESM,
  target: 'node22',
  sourceMap: true,
  minify: true,
  // Functions ship the SDK versions package.json pins (tested locally), not whichever the runtime holds.
  bundleAwsSDK: true,
  // Some CommonJS dependencies call require(); give the ESM bundle one.
  banner: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
  tsconfig: path.join(projectRoot, 'tsconfig.json'),
} satisfies BundlingOptions;

/** Every function is declared the same way: Node 22 on arm64, ESM bundle, traced, logs kept 30 days. */
export class ControlPlaneFunction extends NodejsFunction {
  /** What was reserved for it, if anything (its event sources scale no further). */
  readonly reservedConcurrency: number | undefined;

  constructor(scope: Construct, id: string, props: ControlPlaneFunctionProps) {
    const logGroup = props.logGroup ?? new LogGroup(scope, `${id}Logs`, { retention: RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    super(scope, id, {
      entry: path.join(projectRoot, props.entry),
      handler: 'handler',
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(10),
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      tracing: Tracing.ACTIVE,
      logGroup,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...environmentOf(props.settings ?? {}) },
      depsLockFilePath: path.join(projectRoot, 'package-lock.json'),
      projectRoot,
      bundling: { ...BUNDLING, assetHash: bundleFingerprint(projectRoot, props.entry, BUNDLING) },
    });
    this.reservedConcurrency = props.reservedConcurrentExecutions;
    acknowledge(
      this,
      'L1',
      'Node 22 on purpose: the newest runtime whose language the local runner (Node 20) and the bundles (target node22) share; supported by Lambda into 2027',
    );
    acknowledge(
      this,
      'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      "AWS's basic execution policy: only CloudWatch Logs writes, which every function needs for its log group",
    );
    // cdk-stack.test checks that `*` is granted to X-Ray actions only.
    acknowledgeWildcards(this, 'X-Ray (active tracing) has no resource-level permissions: PutTraceSegments and PutTelemetryRecords need *', {
      resources: ['*'],
    });
  }

  /** Gives the function one setting of the environment contract. */
  setting(name: FunctionSetting, value: string): this {
    this.addEnvironment(functionEnvironment[name], value);
    return this;
  }
}
