import { randomUUID } from 'node:crypto';
import type { GraphMessage, NodeKind, OutgoingGraphMessage } from '#events/projects.ts';
import { deleteDisk, type DiskItem } from '../storage/disks.ts';
import { InUseError, NotFoundError } from '../core/errors.ts';
import { parseImageCopyNodeId, releaseImageCopy } from '../images/image-copies.ts';
import { deleteNetwork } from '../network/networks.ts';
import type { ProjectItem } from '../tenancy/projects.ts';
import { deleteServiceAccount } from '../identity/service-accounts.ts';
import { getItem, sleep } from '../core/store.ts';
import { indexes, indexKeys, keys } from '../core/table-keys.ts';
import { deleteVm, type ReleasedVm } from '../compute/vms.ts';
import { DeleteCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { dynamodb } from '../platform/clients.ts';

/** Sends graph messages to this region's graph queue, or to the named region's. */
export type SendGraphMessages = (messages: OutgoingGraphMessage[], region?: string) => Promise<void>;

interface Node {
  kind: NodeKind;
  id: string;
  pk: string;
  sk: string;
  region?: string;
}

/**
 * Handles one message to one node. Every step is idempotent, so a handler that crashes halfway
 * is finished by the redelivery, and nothing is released twice: each release is the conditional
 * removal of the resource's own item, together with what it gave back (addresses, host places,
 * pool capacity), in one transaction; a node already gone only tells its project to look again.
 *
 * Releases only happen under a project being deleted. A node still used (a network with VMs, an
 * attached disk, an account attached to VMs) waits: each user, when released, addresses its used
 * nodes again.
 *
 * Regional nodes (VMs, networks, disks, image copies) are released by their own region's control
 * plane, whose conditional writes are the only ones on their items: a message for a node of
 * another region (messages name the node's region, from the project index) is handed to that
 * region's graph queue unchanged.
 */
export async function handleGraphMessage(table: string, region: string, message: GraphMessage, send: SendGraphMessages): Promise<void> {
  const project = await projectBeingDeleted(table, message.projectId);
  if (!project) return;
  if (message.kind === 'project') return settleProject(table, project, message.action === 'release', send);
  const home = message.region;
  // Each hand-over is distinct (a random sender): deduplicating it could swallow a later, needed one.
  if (home && home !== region) return send([{ message, from: `${region}-${randomUUID()}` }], home);

  const tenantId = project.tenantId;
  const toProject: OutgoingGraphMessage = {
    message: { action: 'check', kind: 'project', nodeId: project.projectId, projectId: project.projectId },
    from: message.nodeId,
  };
  // What a VM uses is in its region (this one), but service accounts, which are global.
  const release = (kind: NodeKind, nodeId: string): OutgoingGraphMessage => ({
    message: { action: 'release', kind, nodeId, projectId: project.projectId, ...(kind === 'service-account' ? {} : { region }) },
    from: message.nodeId,
  });

  try {
    switch (message.kind) {
      case 'vm': {
        try {
          await deleteVm(table, region, tenantId, message.nodeId, { release: true });
        } catch (error) {
          if (!(error instanceof NotFoundError)) throw error;
        }
        // What the VM used may have been waiting for it; the record survives a crash right after the release.
        const released = await getItem<ReleasedVm>(table, keys.releasedVm(message.nodeId));
        if (released) {
          const used = [release('network', released.networkId), ...released.diskIds.map((diskId) => release('disk', diskId))];
          if (released.serviceAccountId) used.push(release('service-account', released.serviceAccountId));
          await send(used);
        }
        break;
      }
      case 'network':
        if (!(await releasedUnlessInUse(() => deleteNetwork(table, region, tenantId, message.nodeId)))) return;
        break;
      case 'disk': {
        const disk = await getItem<DiskItem>(table, keys.disk(message.nodeId));
        if (disk?.state === 'attached') return;
        if (!(await releasedUnlessInUse(() => deleteDisk(table, region, tenantId, message.nodeId)))) return;
        break;
      }
      case 'service-account':
        if (!(await releasedUnlessInUse(() => deleteServiceAccount(table, tenantId, message.nodeId)))) return;
        break;
      case 'image-copy': {
        const copy = parseImageCopyNodeId(message.nodeId);
        if (copy) await releaseImageCopy(table, copy.imageId, copy.region, project.projectId);
        break;
      }
    }
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  await send([toProject]);
}

/** How long a message waits for this region's replica to show its project being deleted, and how often it looks. */
const REPLICA_WAIT_MS = 5_000;
const REPLICA_POLL_MS = 100;

/**
 * The project a message is for, once this region's replica shows it `deleting`; undefined when it
 * is gone (its deletion finished, so the message has nothing left to do). Messages are only sent
 * for a project being deleted, but one handed over from another region can outrun the global
 * table's replication of that state: it waits a moment for it, then fails so that SQS delivers it
 * again later. Dropping it would leave this region's nodes, and so the project, forever.
 */
async function projectBeingDeleted(table: string, projectId: string): Promise<ProjectItem | undefined> {
  const deadline = Date.now() + REPLICA_WAIT_MS;
  for (;;) {
    const project = await getItem<ProjectItem>(table, keys.project(projectId));
    if (!project || project.state === 'deleting') return project;
    if (Date.now() >= deadline) {
      throw new Error(
        `project ${projectId} is ${project.state}, not deleting, in this region's table after ${REPLICA_WAIT_MS} ms: replication is behind; the message will be delivered again`,
      );
    }
    await sleep(REPLICA_POLL_MS);
  }
}

/**
 * A project being deleted: on `release`, address a release to everything it owns; once it owns
 * nothing, remove it. The index of owned nodes can trail a deletion, so a listed node is read
 * again before it counts. A `check` (one per released node) stops at the first node that still
 * exists, so checking stays O(1) however large the project.
 */
async function settleProject(table: string, project: ProjectItem, fanOut: boolean, send: SendGraphMessages): Promise<void> {
  const releaseAll = (nodes: Node[], from: string) =>
    send(nodes.map((node) => ({ message: { action: 'release', kind: node.kind, nodeId: node.id, projectId: project.projectId, region: node.region }, from })));
  if (fanOut) {
    const remaining = await existingNodes(table, project.projectId);
    if (remaining.length > 0) return releaseAll(remaining, project.projectId);
  } else if (await anyRemaining(table, project.projectId)) {
    return;
  }
  // The project index can trail a write by a moment on DynamoDB: a node created just before the
  // delete might not be listed yet. Look once more after that moment before removing the project.
  await sleep(INDEX_SETTLE_MS);
  const late = await existingNodes(table, project.projectId);
  if (late.length > 0) return releaseAll(late, `${project.projectId}-late`);
  try {
    await dynamodb.send(
      new DeleteCommand({
        TableName: table,
        Key: keys.project(project.projectId),
        ConditionExpression: '#state = :deleting',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':deleting': 'deleting' },
      }),
    );
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}

/** How long DynamoDB's index may trail a write, as far as removing a project goes. */
const INDEX_SETTLE_MS = 1_000;

const exists = async (table: string, node: Node) => (await getItem(table, { pk: node.pk, sk: node.sk })) !== undefined;

/** The listed nodes that still exist, each read again consistently. */
async function existingNodes(table: string, projectId: string): Promise<Node[]> {
  const listed = await ownedNodes(table, projectId);
  const present = await Promise.all(listed.map((node) => exists(table, node)));
  return listed.filter((_, index) => present[index]);
}

async function anyRemaining(table: string, projectId: string): Promise<boolean> {
  // Small pages: a check usually stops at the first node.
  for await (const node of ownedNodePages(table, projectId, 25)) if (await exists(table, node)) return true;
  return false;
}

/** The nodes a project owns, a page at a time, for callers that may stop early. */
async function* ownedNodePages(table: string, projectId: string, pageSize?: number): AsyncGenerator<Node> {
  let start: Record<string, unknown> | undefined;
  do {
    const page = await dynamodb.send(
      new QueryCommand({
        TableName: table,
        IndexName: indexes.gsi4,
        KeyConditionExpression: 'gsi4pk = :pk',
        ExpressionAttributeValues: { ':pk': indexKeys.nodesOfProject(projectId) },
        ProjectionExpression: 'pk, sk, gsi4sk, #region',
        ExpressionAttributeNames: { '#region': 'region' },
        Limit: pageSize,
        ExclusiveStartKey: start,
      }),
    );
    for (const item of (page.Items ?? []) as NodeIndexEntry[]) yield toNode(item);
    start = page.LastEvaluatedKey;
  } while (start);
}

/** The nodes a project owns, from the project index. */
export async function ownedNodes(table: string, projectId: string): Promise<Node[]> {
  const nodes: Node[] = [];
  for await (const node of ownedNodePages(table, projectId)) nodes.push(node);
  return nodes;
}

interface NodeIndexEntry {
  pk: string;
  sk: string;
  gsi4sk: string;
  region?: string;
}

function toNode({ pk, sk, gsi4sk, region }: NodeIndexEntry): Node {
  const separator = gsi4sk.indexOf('#');
  return { kind: gsi4sk.slice(0, separator) as NodeKind, id: gsi4sk.slice(separator + 1), pk, sk, region };
}

/** Runs a release; false when the node is still in use (it will be addressed again by its last user). */
async function releasedUnlessInUse(release: () => Promise<void>): Promise<boolean> {
  try {
    await release();
    return true;
  } catch (error) {
    if (error instanceof InUseError) return false;
    throw error;
  }
}
