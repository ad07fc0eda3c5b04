import { App, type AppProps } from 'aws-cdk-lib';
import { DEFAULT_DEPLOYMENT, DEPLOYMENT_NAME, stackNameFor } from '#events/naming.ts';
import { ControlPlaneStack } from './control-plane-stack.ts';
import { checkedByNag } from './nag.ts';

export { stackNameFor };

/**
 * The regions the control plane runs in, the first being the one whose stack defines the global
 * table (the others hold replicas of it): `-c regions=us-east-1,eu-west-1`, or
 * STRATOPLANE_REGIONS, or else the CLI's region alone.
 */
export function regionsOf(app: App): string[] {
  const listed = (app.node.tryGetContext('regions') as string | undefined) ?? process.env.STRATOPLANE_REGIONS;
  const regions = (listed ?? process.env.CDK_DEFAULT_REGION ?? process.env.AWS_REGION ?? 'us-east-1')
    .split(',')
    .map((region) => region.trim())
    .filter(Boolean);
  if (new Set(regions).size !== regions.length) throw new Error(`regions must be distinct: ${regions.join(',')}`);
  return regions;
}

/**
 * The deployment's name, its stacks' name prefix (`-c deployment=staging` → `staging-us-east-1`),
 * or STRATOPLANE_DEPLOYMENT, else `Stratoplane`. Every fixed physical name derives from it, so two
 * deployments share an account without a clash.
 */
export function deploymentNameOf(app: App): string {
  const name = (app.node.tryGetContext('deployment') as string | undefined) ?? (process.env.STRATOPLANE_DEPLOYMENT || DEFAULT_DEPLOYMENT);
  if (!DEPLOYMENT_NAME.test(name)) throw new Error(`deployment ${JSON.stringify(name)}: a letter, then letters, digits or hyphens, 20 characters at most`);
  return name;
}

/**
 * Private ranges (IPv4 CIDRs) the operator opens to VMs' egress for this deployment, e.g. to
 * reach services inside the operator's own network: `-c egressOpenCidrs=10.20.0.0/16,...` or
 * STRATOPLANE_EGRESS_OPEN_CIDRS. None by default: VMs' bridges then reach public addresses only.
 */
export function egressOpenCidrsOf(app: App): string[] {
  const listed = (app.node.tryGetContext('egressOpenCidrs') as string | undefined) ?? process.env.STRATOPLANE_EGRESS_OPEN_CIDRS ?? '';
  return listed
    .split(',')
    .map((cidr) => cidr.trim())
    .filter(Boolean);
}

/** Builds the CDK app; the CLI (`cdk synth/deploy`) and the local runner both start here. */
export function buildApp(props: AppProps = {}): { app: App; stacks: Map<string, ControlPlaneStack>; regions: string[]; deployment: string } {
  // S3 server access logs are delivered under a bucket policy, not an ACL (the log bucket keeps ACLs off).
  const app = new App({ ...props, context: { '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true, ...props.context } });
  checkedByNag(app);
  const regions = regionsOf(app);
  const [primary] = regions as [string];
  const deployment = deploymentNameOf(app);
  const stacks = new Map<string, ControlPlaneStack>();
  for (const region of regions) {
    const stack = new ControlPlaneStack(app, stackNameFor(region, deployment), {
      env: { account: process.env.CDK_DEFAULT_ACCOUNT, region },
      description: `Stratoplane: serverless control plane for virtual machines (${region})`,
      deployment,
      regions,
      egressOpenCidrs: egressOpenCidrsOf(app),
    });
    // A replica region's stack reads the replica the primary region's stack creates.
    if (region !== primary) stack.addStackDependency(stacks.get(primary)!);
    stacks.set(region, stack);
  }
  return { app, stacks, regions, deployment };
}
