import { startSchedules } from './schedules.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp, stackNameFor } from '../cdk/app-builder.ts';
import { deploymentFromEnvironment } from '#events/naming.ts';
import { authorizersOf, gatewayResponsesOf, serveApi, routesOf } from './api-gateway.ts';
import { LocalAuthorizer } from './authorizer.ts';
import { Checkpoints } from './checkpoints.ts';
import { LocalFunction } from './function-host.ts';
import { provision } from './provision.ts';
import { runCustomResources, serviceTokenFunctions } from './custom-resources.ts';
import { withReplicaTable } from './replica-table.ts';
import { QueuePoller } from './queue-poller.ts';
import { StreamPoller } from './stream-poller.ts';
import { borrowBundles, lastSynthesis } from './synth-cache.ts';
import { readTemplate, Resolver, resourcesOfType, type CfnTemplate } from './template.ts';
import { credentialsEnv, functionPrincipalName, registerPrincipals, registrationFor } from './aws/iam-principals.ts';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (message: string) => console.error(`[runner] ${message}`);

export interface RunnerInfo {
  apiUrl: string;
  region: string;
  endpoint: string;
  stackName: string;
  /** The synthesized template this runner runs; `readTemplate` reads it with its nested stacks' resources. */
  templateFile: string;
  /** Physical names of what the runner created, by CloudFormation logical id. */
  resources: Record<string, string>;
}

/**
 * Runs the CDK app locally: synthesizes it (bundling each function as for AWS), creates its
 * tables, queues and keys in the local AWS, loads every function bundle, polls every event source
 * mapping and serves the REST API on 127.0.0.1. Everything comes from the synthesized template.
 */
async function main() {
  const endpoint = process.env.AWS_ENDPOINT_URL;
  if (!endpoint) throw new Error('AWS_ENDPOINT_URL is not set: start the local AWS first (npm start does both)');
  process.env.AWS_REGION ??= 'us-east-1';
  const region = process.env.AWS_REGION;
  const stateDir = process.env.STRATOPLANE_STATE_DIR ?? path.join(projectRoot, '.local-run');

  const stackName = stackNameFor(region, deploymentFromEnvironment());
  const outdir = path.join(stateDir, `cdk.out-${region}`);
  const template = synthesize(outdir, region, stackName);
  const resolver = new Resolver(template, { region, accountId: '000000000000', partition: 'aws', stackName });
  await provision(template, resolver);
  await runCustomResources(template, resolver);

  const functions = await startFunctions(template, resolver, outdir, { endpoint, region, stackName });
  const pollers = startEventSources(template, resolver, functions, new Checkpoints(path.join(stateDir, `stream-checkpoints-${region}.json`)), region);
  const schedules = startSchedules(template, functions, region, log);

  const stage = (resourcesOfType(template, 'AWS::ApiGateway::Stage')[0]?.[1].Properties?.StageName as string | undefined) ?? 'v1';
  const authorizers = new Map(
    authorizersOf(template).map((spec) => {
      const fn = functions.get(spec.functionLogicalId);
      if (!fn) throw new Error(`authorizer ${spec.logicalId} uses a function the runner does not run`);
      return [spec.logicalId, new LocalAuthorizer(spec, fn, log)] as const;
    }),
  );
  const api = await serveApi({
    routes: routesOf(template),
    gatewayResponses: gatewayResponsesOf(template),
    functions,
    authorizers,
    executeApiArn: `arn:aws:execute-api:${region}:000000000000:local`,
    stage,
    port: Number(process.env.STRATOPLANE_API_PORT ?? 0),
    log,
    diagnostics: { functions: () => Object.fromEntries([...functions].map(([id, fn]) => [id, { functionName: fn.spec.functionName, ...fn.stats }])) },
  });

  const resources: Record<string, string> = {};
  for (const [id, resource] of Object.entries(template.Resources)) {
    if (['AWS::DynamoDB::GlobalTable', 'AWS::SQS::Queue', 'AWS::S3::Bucket'].includes(resource.Type)) resources[id] = resolver.resolveString({ Ref: id });
    if (resource.Type === 'AWS::KMS::Key') resources[id] = resolver.resolveString({ 'Fn::GetAtt': [id, 'Arn'] });
  }
  const info: RunnerInfo = { apiUrl: api.url, region, endpoint, stackName, templateFile: path.join(outdir, `${stackName}.template.json`), resources };
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(path.join(stateDir, `runner-${region}.json`), JSON.stringify(info, null, 2));
  log(`${functions.size} functions, ${pollers.length} event source mappings, API at ${api.url}`);
  // The line supervisors and tests wait for.
  console.log(`STRATOPLANE_RUNNER_READY ${JSON.stringify(info)}`);

  const shutdown = async () => {
    for (const poller of pollers) poller.stop();
    schedules.stop();
    await api.close();
    await Promise.all([...functions.values()].map((fn) => fn.stop()));
    process.exit(0);
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

/**
 * Synthesizes the app (every region's stack, bundling only this region's functions) and returns
 * this region's template, its nested stacks' resources merged in; in a replica region it also holds the global table's definition, as
 * the replica the primary region's stack makes there on AWS.
 */
function synthesize(outdir: string, region: string, stackName: string): CfnTemplate {
  process.env.CDK_DEFAULT_REGION = region;
  const last = lastSynthesis(projectRoot, outdir, { region, stackName, ...pick(process.env, APP_SETTINGS) });
  const started = Date.now();
  const borrowed = last.reusable ? 0 : borrowBundles(outdir);
  // This region's stack and the stacks nested in it (its routes, cdk/constructs/route-stacks.ts).
  const { app, regions } = buildApp({
    outdir,
    context: { 'aws:cdk:enable-asset-metadata': true, 'aws:cdk:bundling-stacks': [stackName, `${stackName}/**`] },
  });
  if (!regions.includes(region)) throw new Error(`region ${region} is not one of the app's regions (${regions.join(', ')}): set STRATOPLANE_REGIONS`);
  if (last.reusable) log(`no source changed since the last synthesis: reusing ${path.relative(projectRoot, outdir)}`);
  else {
    app.synth();
    last.synthesized();
    log(`synthesized and bundled in ${Date.now() - started} ms${borrowed ? ` (${borrowed} bundles taken from another region's synthesis)` : ''}`);
  }
  const templateOf = (name: string) => readTemplate(path.join(outdir, `${name}.template.json`));
  const template = templateOf(stackName);
  return region === regions[0] ? template : withReplicaTable(template, templateOf(stackNameFor(regions[0]!, deploymentFromEnvironment())), region);
}

/** The environment the app reads (cdk/app-builder.ts): a change to any means synthesizing again. */
const APP_SETTINGS = ['STRATOPLANE_REGIONS', 'STRATOPLANE_DEPLOYMENT', 'STRATOPLANE_EGRESS_OPEN_CIDRS', 'CDK_DEFAULT_ACCOUNT'];

function pick(env: NodeJS.ProcessEnv, names: string[]): Record<string, string | undefined> {
  return Object.fromEntries(names.map((name) => [name, env[name]]));
}

async function startFunctions(template: CfnTemplate, resolver: Resolver, outdir: string, aws: { endpoint: string; region: string; stackName: string }) {
  const functions = new Map<string, LocalFunction>();
  // Custom resource providers ran as the runner's own calls (runCustomResources).
  const providers = serviceTokenFunctions(template);
  const specs = resourcesOfType(template, 'AWS::Lambda::Function')
    .filter(([id]) => !providers.has(id))
    .map(([id, resource]) => {
      const props = resource.Properties as { Handler: string; Timeout?: number; MemorySize?: number; Environment?: { Variables?: Record<string, unknown> } };
      const assetPath = resource.Metadata?.['aws:asset:path'] as string | undefined;
      if (!assetPath) throw new Error(`function ${id} has no bundled asset; only NodejsFunction-style functions run locally`);
      const functionName = `${aws.stackName}-${id}`;
      resolver.setRef(id, functionName);
      resolver.setAttribute(id, 'Arn', `arn:aws:lambda:${aws.region}:000000000000:function:${functionName}`);
      return { id, props, assetPath, functionName };
    });
  // Each function signs with its own key, so the proxy in front of the local AWS checks its calls against its role.
  await registerPrincipals(
    aws.endpoint,
    registrationFor(
      template,
      resolver,
      specs.map(({ id }) => id),
    ),
  );
  for (const { id, props, assetPath, functionName } of specs) {
    const variables = resolver.resolve(props.Environment?.Variables ?? {}) as Record<string, string>;
    const fn = new LocalFunction({
      logicalId: id,
      functionName,
      assetDir: path.join(outdir, assetPath),
      handler: props.Handler,
      timeoutSeconds: props.Timeout ?? 3,
      memorySize: props.MemorySize ?? 128,
      environment: {
        PATH: process.env.PATH ?? '',
        AWS_REGION: aws.region,
        AWS_DEFAULT_REGION: aws.region,
        AWS_ENDPOINT_URL: aws.endpoint,
        ...credentialsEnv(functionPrincipalName(aws.region, id)),
        AWS_LAMBDA_FUNCTION_NAME: functionName,
        POWERTOOLS_LOG_LEVEL: process.env.POWERTOOLS_LOG_LEVEL ?? 'WARN',
        // Lambda runs Node 22; the SDK's local Node 20 notice is noise here.
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...Object.fromEntries(Object.entries(variables).map(([key, value]) => [key, String(value)])),
      },
    });
    functions.set(id, fn);
  }
  await Promise.all([...functions.values()].map((fn) => fn.ready));
  return functions;
}

/** The properties of an `AWS::Lambda::EventSourceMapping` the runner acts on (intrinsics left unresolved). */
interface EventSourceMappingProperties {
  FunctionName: { Ref?: string };
  EventSourceArn: unknown;
  FunctionResponseTypes?: string[];
  DestinationConfig?: { OnFailure?: { Destination?: unknown } };
  BatchSize?: number;
  StartingPosition?: 'LATEST' | 'TRIM_HORIZON';
  BisectBatchOnFunctionError?: boolean;
  MaximumRetryAttempts?: number;
  MaximumBatchingWindowInSeconds?: number;
}

function startEventSources(template: CfnTemplate, resolver: Resolver, functions: Map<string, LocalFunction>, checkpoints: Checkpoints, region: string) {
  const queueUrlByArn = new Map(
    resourcesOfType(template, 'AWS::SQS::Queue').map(([id]) => [resolver.resolveString({ 'Fn::GetAtt': [id, 'Arn'] }), resolver.resolveString({ Ref: id })]),
  );
  return resourcesOfType(template, 'AWS::Lambda::EventSourceMapping').map(([id, resource]) => {
    const props = resource.Properties as unknown as EventSourceMappingProperties;
    const functionId = props.FunctionName.Ref;
    const fn = functionId ? functions.get(functionId) : undefined;
    if (!fn) throw new Error(`event source mapping ${id} targets a function the runner does not run`);
    const sourceArn = resolver.resolveString(props.EventSourceArn);
    const reportBatchItemFailures = (props.FunctionResponseTypes ?? []).includes('ReportBatchItemFailures');
    // Lambda polls and, on failure, sends to the destination with the function's execution role.
    const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = credentialsEnv(functionPrincipalName(region, functionId!));
    const credentials = { accessKeyId, secretAccessKey };
    if (sourceArn.includes(':dynamodb:')) {
      const onFailureArn = props.DestinationConfig?.OnFailure?.Destination ? resolver.resolveString(props.DestinationConfig.OnFailure.Destination) : undefined;
      const poller = new StreamPoller(
        {
          uuid: `${id}@${sourceArn}`,
          streamArn: sourceArn,
          batchSize: props.BatchSize ?? 100,
          startingPosition: props.StartingPosition ?? 'LATEST',
          reportBatchItemFailures,
          bisectOnError: props.BisectBatchOnFunctionError === true,
          maximumRetryAttempts: props.MaximumRetryAttempts ?? -1,
          onFailureQueueUrl: onFailureArn ? queueUrlByArn.get(onFailureArn) : undefined,
          // AWS Lambda polls each stream shard four times a second.
          pollIntervalMs: Number(process.env.STRATOPLANE_STREAM_POLL_MS ?? 250),
          region,
          credentials,
        },
        fn,
        checkpoints,
        log,
      );
      poller.start();
      return poller;
    }
    if (sourceArn.includes(':sqs:')) {
      const queueUrl = queueUrlByArn.get(sourceArn);
      if (!queueUrl) throw new Error(`event source mapping ${id} reads a queue the runner did not create`);
      const poller = new QueuePoller(
        {
          queueUrl,
          queueArn: sourceArn,
          batchSize: props.BatchSize ?? 10,
          maximumBatchingWindowSeconds: props.MaximumBatchingWindowInSeconds ?? 0,
          reportBatchItemFailures,
          region,
          // Lambda starts polling a queue with five concurrent batches.
          pollers: 5,
          credentials,
        },
        fn,
        log,
      );
      poller.start();
      return poller;
    }
    throw new Error(`event source mapping ${id}: unsupported source ${sourceArn}`);
  });
}

main().catch((error: Error) => {
  log(`failed to start: ${error.stack ?? error.message}`);
  process.exit(1);
});
