import type { IConstruct } from 'constructs';

/*
 * Why this file: every construct that names a resource derives the name from its deployment
 * (events/naming.ts); the stack records the deployment's name once, here, for all of them.
 */

const CONTEXT_KEY = 'stratoplane:deployment';

/** Records `deployment` as the name every construct under `scope` derives its physical names from. */
export function setDeployment(scope: IConstruct, deployment: string): void {
  scope.node.setContext(CONTEXT_KEY, deployment);
}

/** The deployment name a construct's physical names derive from (events/naming.ts). */
export function deploymentOf(scope: IConstruct): string {
  const deployment: unknown = scope.node.tryGetContext(CONTEXT_KEY);
  if (typeof deployment !== 'string') throw new Error(`${scope.node.path}: not inside a control-plane stack (no deployment name)`);
  return deployment;
}
