import { App, type AppProps } from 'aws-cdk-lib';
import { ControlPlaneStack } from './control-plane-stack.ts';

export const STACK_NAME = 'Stratoplane';

/** Builds the CDK app; the CLI (`cdk synth/deploy`) and the local runner both start here. */
export function buildApp(props: AppProps = {}): { app: App; stack: ControlPlaneStack } {
  const app = new App(props);
  // The table's customer-managed key needs a concrete region; `-c region=…` or the CLI's profile picks it.
  const region = (app.node.tryGetContext('region') as string | undefined) ?? process.env.CDK_DEFAULT_REGION ?? process.env.AWS_REGION ?? 'us-east-1';
  const stack = new ControlPlaneStack(app, STACK_NAME, {
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region },
    description: 'Stratoplane: serverless control plane for virtual machines',
  });
  return { app, stack };
}
