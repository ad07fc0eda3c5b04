import type { CfnResource, CfnTemplate } from './template.ts';

/**
 * A replica region's template plus the global table it reads. On AWS the primary region's stack
 * creates the replica in this region; locally each region's runner creates its own table from
 * the same definition, and the local replicator keeps the tables in step.
 */
export function withReplicaTable(template: CfnTemplate, primaryTemplate: CfnTemplate, region: string): CfnTemplate {
  const globalTables = Object.entries(primaryTemplate.Resources).filter(([, resource]) => resource.Type === 'AWS::DynamoDB::GlobalTable');
  const replicated = globalTables.filter(([, resource]) => replicaRegionsOf(resource).includes(region));
  if (replicated.length === 0) throw new Error(`the primary region's stack has no global table with a replica in ${region}`);
  const resources = { ...template.Resources };
  for (const [id, resource] of replicated) {
    if (resources[id]) throw new Error(`logical id ${id} is used in both the primary and the ${region} stack`);
    resources[id] = resource;
  }
  return { ...template, Resources: resources };
}

function replicaRegionsOf(resource: CfnResource): string[] {
  const replicas = (resource.Properties?.Replicas ?? []) as { Region?: unknown }[];
  return replicas.map((replica) => replica.Region).filter((region): region is string => typeof region === 'string');
}
