import { Names, Stack, type CfnElement } from 'aws-cdk-lib';
import { Construct, type IConstruct } from 'constructs';

/*
 * The control-plane stack was one flat list of resources before each of its concerns became a
 * construct, and CloudFormation knows its tables, keys, queues, buckets and event source mappings
 * by the logical IDs of that layout: a changed ID makes it replace the resource (a table or bucket
 * with a fixed name fails to, a RETAINed key is orphaned, a stream mapping starts over). So a
 * concern construct marked `flat` is left out of the logical IDs of what it holds: they stay what
 * they were when its resources were the stack's own children.
 */

const flatScopes = new WeakSet<IConstruct>();
const owners = new WeakMap<Stack, Map<string, CfnElement>>();

/** Leaves `construct`'s id out of its resources' logical IDs (ControlPlaneStack.allocateLogicalId). */
export function flat<T extends IConstruct>(construct: T): T {
  flatScopes.add(construct);
  return construct;
}

/**
 * The logical ID CDK gives `element` with the flat constructs left out of its path. A mapping
 * from an event source is named after its source's unique id (`SqsEventSource:<id>`), which
 * carries the source's path: that id is the flat one too.
 */
export function flatLogicalId(element: CfnElement): string {
  const { stack } = element;
  const components = flatPath(element).map((id) =>
    id.replace(/^([A-Za-z]+EventSource):([A-Za-z0-9]+)$/, (whole, kind: string, uniqueId: string) => {
      const source = stack.node.findAll().find((construct) => Names.nodeUniqueId(construct.node) === uniqueId);
      return source ? `${kind}:${uniqueIdOf([stack.node.id, ...flatPath(source)])}` : whole;
    }),
  );
  const logicalId = uniqueIdOf(components);
  const byId = owners.get(stack) ?? new Map<string, CfnElement>();
  owners.set(stack, byId);
  const owner = byId.get(logicalId);
  if (owner && owner !== element) throw new Error(`${owner.node.path} and ${element.node.path} would both have the logical ID ${logicalId}`);
  byId.set(logicalId, element);
  return logicalId;
}

/** The ids from the stack down to `construct`, flat constructs left out. */
function flatPath(construct: IConstruct): string[] {
  const { scopes } = construct.node;
  return scopes
    .slice(scopes.indexOf(Stack.of(construct)) + 1)
    .filter((scope) => !flatScopes.has(scope))
    .map((scope) => scope.node.id);
}

/** CDK's unique id (Names.nodeUniqueId, also how a stack names its elements) of a path of construct ids. */
function uniqueIdOf(path: readonly string[]): string {
  let node = new Construct(undefined as unknown as Construct, '');
  for (const id of path) node = new Construct(node, id);
  return Names.nodeUniqueId(node.node);
}
