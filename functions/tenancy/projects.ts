import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { createHash } from 'node:crypto';
import { PutCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { throwIfClaimLost } from '../core/client-tokens.ts';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { CreateProjectRequest, GraphMessage, NodeKind } from '#events/projects.ts';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError, NotFoundError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { queryPage } from '../core/pagination.ts';
import { cancellationCodes, type TransactItem } from '../core/store.ts';
import { indexKeys, indexes, keys, withoutTableKeys } from '../core/table-keys.ts';
import { getTenantItem } from '../core/access.ts';

export interface ProjectItem {
  kind: 'project';
  projectId: string;
  tenantId: string;
  name: string;
  state: 'active' | 'deleting';
  createdAt: string;
}

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type ProjectView = z.infer<typeof responses.Project>;
const toView = ({ kind: _kind, ...view }: ProjectItem): ProjectView => withoutTableKeys(view);

/** Where resources created without a project go: one per tenant, made on first use. */
export const defaultProjectId = (tenantId: string) => `proj-${createHash('sha256').update(tenantId).digest('hex').slice(0, 12)}`;

/** The attributes that make a resource item a node of its project's graph. */
export const nodeAttributes = (projectId: string, kind: NodeKind, id: string) => ({
  projectId,
  gsi4pk: indexKeys.nodesOfProject(projectId),
  gsi4sk: `${kind}#${id}`,
});

export async function createProject(table: string, tenantId: string, request: CreateProjectRequest): Promise<ProjectView> {
  const projectId = newId('proj');
  const item: ProjectItem & Record<string, unknown> = {
    ...keys.project(projectId),
    kind: 'project',
    projectId,
    tenantId,
    name: request.name,
    state: 'active',
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.projectsOfTenant(tenantId),
    gsi1sk: projectId,
  };
  await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  return toView(item);
}

/** A tenant's project; another tenant's is as unknown as one that does not exist. */
export async function getProject(table: string, tenantId: string, projectId: string): Promise<ProjectItem> {
  return getTenantItem<ProjectItem>(table, keys.project(projectId), tenantId, 'project', projectId);
}

export { toView as toProjectView };

export async function listProjects(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<ProjectItem>(
    table,
    { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.projectsOfTenant(tenantId) },
    limit,
    nextToken,
  );
  return { projects: page.items.map(toView), nextToken: page.nextToken };
}

/**
 * The transaction item that makes a create depend on its project: the project must be the
 * tenant's and active, checked in the same transaction as the write, so nothing is added to a
 * project while it is being deleted. The default project is made by its first use.
 */
export function projectGuard(table: string, tenantId: string, projectId: string | undefined): { projectId: string; item: TransactItem } {
  if (projectId) {
    return {
      projectId,
      item: {
        ConditionCheck: {
          TableName: table,
          Key: keys.project(projectId),
          ConditionExpression: 'tenantId = :tenant AND #state = :active',
          ExpressionAttributeNames: { '#state': 'state' },
          ExpressionAttributeValues: { ':tenant': tenantId, ':active': 'active' },
        },
      },
    };
  }
  const id = defaultProjectId(tenantId);
  return {
    projectId: id,
    item: {
      Update: {
        TableName: table,
        Key: keys.project(id),
        UpdateExpression:
          'SET kind = :kind, projectId = :id, tenantId = :tenant, #name = if_not_exists(#name, :default), #state = :active, createdAt = if_not_exists(createdAt, :now), gsi1pk = :list, gsi1sk = :id',
        ConditionExpression: 'attribute_not_exists(pk) OR (tenantId = :tenant AND #state = :active)',
        ExpressionAttributeNames: { '#state': 'state', '#name': 'name' },
        ExpressionAttributeValues: {
          ':kind': 'project',
          ':id': id,
          ':tenant': tenantId,
          ':default': 'default',
          ':active': 'active',
          ':now': new Date().toISOString(),
          ':list': indexKeys.projectsOfTenant(tenantId),
        },
      },
    },
  };
}

/** Why a project guard failed: the project is unknown to this tenant (404) or being deleted (409). */
export async function projectGuardError(table: string, tenantId: string, projectId: string): Promise<Error> {
  try {
    await getProject(table, tenantId, projectId);
  } catch (error) {
    return error as Error;
  }
  return new ConflictError(`project ${projectId} is being deleted`);
}

/**
 * Starts deleting a project: marks it deleting (so nothing new joins it) and addresses a release
 * to it on the graph queue; the graph handler releases everything beneath it.
 */
export async function deleteProject(table: string, tenantId: string, projectId: string, send: (message: GraphMessage) => Promise<void>): Promise<ProjectView> {
  const project = await getProject(table, tenantId, projectId);
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.project(projectId),
        UpdateExpression: 'SET #state = :deleting',
        ConditionExpression: 'tenantId = :tenant',
        ExpressionAttributeNames: { '#state': 'state' },
        ExpressionAttributeValues: { ':deleting': 'deleting', ':tenant': tenantId },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('project', projectId);
    throw error;
  }
  // Sent again on a repeated DELETE (the caller makes each send distinct): releasing is idempotent, and this resumes a stalled deletion.
  await send({ action: 'release', kind: 'project', nodeId: projectId, projectId });
  return toView({ ...project, state: 'deleting' });
}

/** Writes a new resource item into its project (checked by the project guard) in one transaction. */
export async function putInProject(
  table: string,
  tenantId: string,
  guard: ReturnType<typeof projectGuard>,
  item: Record<string, unknown>,
  claimed: TransactItem[] = [],
): Promise<void> {
  try {
    await dynamodb.send(
      new TransactWriteCommand({
        TransactItems: [guard.item, { Put: { TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' } }, ...claimed],
      }),
    );
  } catch (error) {
    const codes = cancellationCodes(error);
    if (codes) throwIfClaimLost(codes, claimed);
    if (codes?.[0] === 'ConditionalCheckFailed') throw await projectGuardError(table, tenantId, guard.projectId);
    throw error;
  }
}
