import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand, paginateListStackResources, type StackResourceSummary } from '@aws-sdk/client-cloudformation';
import { borrowBundles } from '../synth-cache.ts';
import { resourceCount } from '../template.ts';
import { cdk, type CdkTarget } from './cdk-cli.ts';

/** A stack of the synthesized cloud assembly. */
export interface AssemblyStack {
  stackName: string;
  /** Where the app deploys it: aws://<account or unknown-account>/<region>. */
  environment: string;
  region: string;
  templateFile: string;
  /** The resources its template declares, its nested stacks' included (local/template.ts resourceCount). */
  resourceCount: number;
}

export interface Assembly {
  dir: string;
  stacks: AssemblyStack[];
}

export interface DeployResult {
  stacks: number;
  /** Resources the deployed stacks and their nested stacks hold, every one CREATE_COMPLETE or UPDATE_COMPLETE. */
  resources: number;
  /** Wall time of `cdk deploy`. */
  seconds: number;
}

/**
 * `cdk synth` into `dir` (the app of cdk.json, with the given `-c` context), once for every later
 * step. Offline, as `npm run synth`: the CLI's look-up of the account goes to a closed port on this
 * machine, so the template leaves the account to CloudFormation (`AWS::AccountId`) and the synth
 * needs no emulator (it can run while one starts).
 */
export async function synthesize(
  target: Omit<CdkTarget, 'endpoint'>,
  dir: string,
  context: string[] = [],
  /** Cloud assemblies whose function bundles are reused where the sources are the same (local/synth-cache.ts). */
  bundlesFrom: readonly string[] = [],
): Promise<Assembly> {
  rmSync(dir, { recursive: true, force: true });
  borrowBundles(dir, bundlesFrom);
  await cdk({ ...target, endpoint: OFFLINE_ENDPOINT }, ['synth', '--quiet', '--output', dir, ...context.flatMap((entry) => ['--context', entry])]);
  return readAssembly(dir);
}

/** Nothing listens there (the discard port): a call is refused at once, on this machine. */
const OFFLINE_ENDPOINT = 'http://127.0.0.1:9';

/** The stacks of a synthesized cloud assembly (all, or those named). */
export function readAssembly(dir: string, only?: readonly string[]): Assembly {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as {
    artifacts: Record<string, { type: string; environment?: string; properties?: { templateFile?: string; stackName?: string } }>;
  };
  const stacks = Object.entries(manifest.artifacts)
    .filter(([, artifact]) => artifact.type === 'aws:cloudformation:stack')
    .map(([id, artifact]) => {
      const templateFile = path.join(dir, artifact.properties!.templateFile!);
      return {
        stackName: artifact.properties?.stackName ?? id,
        environment: artifact.environment!,
        region: artifact.environment!.split('/').pop()!,
        templateFile,
        resourceCount: resourceCount(templateFile),
      };
    })
    .filter((stack) => !only || only.includes(stack.stackName));
  return { dir, stacks };
}

/** `cdk bootstrap` of every environment the assembly's stacks deploy to. */
export async function bootstrap(target: CdkTarget, assembly: Assembly): Promise<void> {
  await cdk(target, ['bootstrap', '--app', assembly.dir, ...new Set(assembly.stacks.map((stack) => stack.environment))]);
}

/** `cdk deploy` of the assembly's stacks (in their dependency order), then a look at what CloudFormation holds. */
export async function deploy(target: CdkTarget, assembly: Assembly): Promise<DeployResult> {
  const started = Date.now();
  await cdk(target, ['deploy', ...stackNames(assembly), '--exclusively', '--app', assembly.dir, '--require-approval', 'never', '--progress', 'events']);
  const seconds = Math.round((Date.now() - started) / 1000);
  let resources = 0;
  for (const stack of assembly.stacks) {
    const cloudFormation = cloudFormationClient(target, stack.region);
    const { Stacks } = await cloudFormation.send(new DescribeStacksCommand({ StackName: stack.stackName }));
    const status = Stacks?.[0]?.StackStatus;
    if (status !== 'CREATE_COMPLETE' && status !== 'UPDATE_COMPLETE') throw new Error(`${stack.stackName} is ${status} after cdk deploy`);
    const held = await stackResourcesWithNested(target, stack);
    const incomplete = held.filter((resource) => !/^(CREATE|UPDATE)_COMPLETE$/.test(resource.ResourceStatus ?? ''));
    if (incomplete.length) {
      throw new Error(`${stack.stackName}: ${incomplete.map((resource) => `${resource.LogicalResourceId} ${resource.ResourceStatus}`).join(', ')}`);
    }
    resources += held.length;
  }
  return { stacks: assembly.stacks.length, resources, seconds };
}

/** `cdk destroy --force` of the assembly's stacks: what they retain stays (ops/cleanup-stack.ts lists and removes it). */
export async function destroy(target: CdkTarget, assembly: Assembly): Promise<void> {
  await cdk(target, ['destroy', ...stackNames(assembly), '--exclusively', '--force', '--app', assembly.dir]);
}

const stackNames = (assembly: Assembly) => assembly.stacks.map((stack) => stack.stackName);

export async function stackResources(target: CdkTarget, stack: AssemblyStack): Promise<StackResourceSummary[]> {
  const summaries: StackResourceSummary[] = [];
  for await (const page of paginateListStackResources({ client: cloudFormationClient(target, stack.region) }, { StackName: stack.stackName })) {
    summaries.push(...(page.StackResourceSummaries ?? []));
  }
  return summaries;
}

/** The resources of a stack and, recursively, of its nested stacks (`AWS::CloudFormation::Stack`, named by their stack ARN). */
export async function stackResourcesWithNested(target: CdkTarget, stack: AssemblyStack): Promise<StackResourceSummary[]> {
  const held = await stackResources(target, stack);
  const nested = held.filter((resource) => resource.ResourceType === 'AWS::CloudFormation::Stack' && resource.PhysicalResourceId);
  const inNested = await Promise.all(nested.map((resource) => stackResourcesWithNested(target, { ...stack, stackName: resource.PhysicalResourceId! })));
  return [...held, ...inNested.flat()];
}

export function cloudFormationClient(target: CdkTarget, region: string): CloudFormationClient {
  return new CloudFormationClient(clientConfig(target, region));
}

/** SDK client settings for the emulator the CLI deploys into. */
export function clientConfig(target: CdkTarget, region: string) {
  return { endpoint: target.endpoint, region, credentials: { accessKeyId: 'test', secretAccessKey: 'test' } };
}
