import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { imageCopyNodeId } from '../images/image-copies.ts';
import { getProject } from '../tenancy/projects.ts';
import { ownedNodes } from './resource-graph.ts';
import { getItem } from '../core/store.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type GraphView = z.infer<typeof responses.ProjectGraph>;

interface NodeItem {
  name: string;
  networkId?: string;
  diskIds?: Set<string>;
  serviceAccountId?: string;
  imageId?: string;
  region?: string;
}

/** A project's resource graph, read consistently node by node. */
export async function projectGraph(table: string, tenantId: string, projectId: string): Promise<GraphView> {
  const project = await getProject(table, tenantId, projectId);
  const listed = await ownedNodes(table, projectId);
  const items = await Promise.all(listed.map(async (node) => ({ node, item: await getItem<NodeItem>(table, { pk: node.pk, sk: node.sk }) })));
  const present = items.filter((entry) => entry.item !== undefined);
  const nodes: GraphView['nodes'] = [{ nodeId: projectId, kind: 'project', name: project.name }];
  const edges: GraphView['edges'] = [];
  const presentIds = new Set(present.map(({ node }) => node.id));
  for (const { node, item } of present) {
    nodes.push({ nodeId: node.id, kind: node.kind, name: item!.name });
    edges.push({ from: projectId, to: node.id, kind: 'owns' });
    if (node.kind !== 'vm') continue;
    if (item!.networkId) edges.push({ from: node.id, to: item!.networkId, kind: 'uses' });
    for (const diskId of item!.diskIds ?? []) edges.push({ from: node.id, to: diskId, kind: 'uses' });
    if (item!.serviceAccountId) edges.push({ from: node.id, to: item!.serviceAccountId, kind: 'uses' });
    const copyId = item!.imageId && item!.region ? imageCopyNodeId(item!.imageId, item!.region) : undefined;
    if (copyId && presentIds.has(copyId)) edges.push({ from: node.id, to: copyId, kind: 'uses' });
  }
  const order = (a: { nodeId: string }, b: { nodeId: string }) => a.nodeId.localeCompare(b.nodeId);
  return { projectId, state: project.state, nodes: nodes.sort(order), edges: edges.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to)) };
}
