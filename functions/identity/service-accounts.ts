import type { z } from 'zod';
import type * as responses from '#events/responses.ts';
import { DeleteCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { CreateServiceAccountRequest } from '#events/api.ts';
import type { ServiceAccountItem } from '#events/records.ts';
import { dynamodb } from '../platform/clients.ts';
import { ConflictError, InUseError, NotFoundError } from '../core/errors.ts';
import { newId } from '../core/ids.ts';
import { queryPage } from '../core/pagination.ts';
import { cancellationCodes, getItem, queryAll } from '../core/store.ts';
import { indexes, indexKeys, keys } from '../core/table-keys.ts';
import { getVm, toVmView, updateTenantVm, type StoredVm, type VmView } from '../compute/vms.ts';
import { nodeAttributes, projectGuard, putInProject } from '../tenancy/projects.ts';
import { getTenantItem } from '../core/access.ts';
import { assertHomeRegion } from '../core/regions.ts';

/** What the API answers: the schema in `events/responses.ts` is the one source. */
export type ServiceAccountView = z.infer<typeof responses.ServiceAccount>;

const toView = ({ serviceAccountId, tenantId, projectId, name, createdAt }: ServiceAccountItem): ServiceAccountView => ({
  serviceAccountId,
  tenantId,
  projectId,
  name,
  createdAt,
});

export async function createServiceAccount(table: string, tenantId: string, request: CreateServiceAccountRequest): Promise<ServiceAccountView> {
  const serviceAccountId = newId('sa');
  const guard = projectGuard(table, tenantId, request.projectId);
  const item: ServiceAccountItem & Record<string, unknown> = {
    ...keys.serviceAccount(serviceAccountId),
    ...nodeAttributes(guard.projectId, 'service-account', serviceAccountId),
    kind: 'service-account',
    serviceAccountId,
    tenantId,
    name: request.name,
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.serviceAccountsOfTenant(tenantId),
    gsi1sk: serviceAccountId,
  };
  await putInProject(table, tenantId, guard, item);
  return toView(item);
}

/** A tenant's service account; another tenant's is as unknown as one that does not exist. */
export async function getServiceAccount(table: string, tenantId: string, serviceAccountId: string): Promise<ServiceAccountView> {
  return toView(await getTenantItem<ServiceAccountItem>(table, keys.serviceAccount(serviceAccountId), tenantId, 'service account', serviceAccountId));
}

export async function listServiceAccounts(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<ServiceAccountItem>(
    table,
    { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.serviceAccountsOfTenant(tenantId) },
    limit,
    nextToken,
  );
  return { serviceAccounts: page.items.map(toView), nextToken: page.nextToken };
}

/**
 * Attaches a service account to a VM, replacing any other. The account is checked to exist and
 * belong to the VM's tenant in the same transaction as the write.
 */
export async function attachServiceAccount(table: string, region: string, tenantId: string, vmId: string, serviceAccountId: string): Promise<VmView> {
  const vm = assertHomeRegion(await getVm(table, tenantId, vmId), region, `vm ${vmId}`);
  const account = await getServiceAccount(table, tenantId, serviceAccountId);
  if (account.projectId !== vm.projectId)
    throw new ConflictError(`service account ${serviceAccountId} belongs to project ${account.projectId}, vm ${vmId} to ${vm.projectId}`);
  const updatedAt = new Date().toISOString();
  try {
    await dynamodb.send(
      new TransactWriteCommand({
        TransactItems: [
          {
            ConditionCheck: {
              TableName: table,
              Key: keys.serviceAccount(serviceAccountId),
              ConditionExpression: 'tenantId = :tenant',
              ExpressionAttributeValues: { ':tenant': tenantId },
            },
          },
          {
            Update: {
              TableName: table,
              Key: keys.vm(vmId),
              UpdateExpression: 'SET serviceAccountId = :sa, updatedAt = :now',
              ConditionExpression: 'tenantId = :tenant',
              ExpressionAttributeValues: { ':sa': serviceAccountId, ':now': updatedAt, ':tenant': tenantId },
            },
          },
        ],
      }),
    );
  } catch (error) {
    const codes = cancellationCodes(error);
    if (codes?.[0] === 'ConditionalCheckFailed') throw new NotFoundError('service account', serviceAccountId);
    if (codes?.[1] === 'ConditionalCheckFailed') throw new NotFoundError('vm', vmId);
    throw error;
  }
  return toVmView({ ...vm, serviceAccountId, updatedAt });
}

export async function detachServiceAccount(table: string, region: string, tenantId: string, vmId: string): Promise<VmView> {
  const vm = assertHomeRegion(await getVm(table, tenantId, vmId), region, `vm ${vmId}`);
  const updatedAt = new Date().toISOString();
  await updateTenantVm(table, tenantId, vmId, { expression: 'REMOVE serviceAccountId SET updatedAt = :now', values: { ':now': updatedAt } });
  return toVmView({ ...vm, serviceAccountId: undefined, updatedAt });
}

/**
 * The VMs a service account is attached to: those of its project the index shows with it, each
 * read again consistently (the index may still show a VM that was deleted or detached).
 */
export async function usersOfServiceAccount(table: string, account: ServiceAccountItem): Promise<string[]> {
  const vms = await queryAll<{ pk: string; sk: string }>({
    TableName: table,
    IndexName: indexes.gsi4,
    KeyConditionExpression: 'gsi4pk = :pk AND begins_with(gsi4sk, :vm)',
    FilterExpression: 'serviceAccountId = :sa',
    ExpressionAttributeValues: { ':pk': indexKeys.nodesOfProject(account.projectId), ':vm': 'vm#', ':sa': account.serviceAccountId },
    ProjectionExpression: 'pk, sk',
  });
  const current = await Promise.all(vms.map(({ pk, sk }) => getItem<StoredVm>(table, { pk, sk })));
  return current
    .filter((vm) => vm?.serviceAccountId === account.serviceAccountId)
    .map((vm) => vm!.vmId)
    .sort();
}

/** Deletes a service account no VM uses; one in use is refused with its VMs named. */
export async function deleteServiceAccount(table: string, tenantId: string, serviceAccountId: string): Promise<void> {
  const account = await getTenantItem<ServiceAccountItem>(table, keys.serviceAccount(serviceAccountId), tenantId, 'service account', serviceAccountId);
  const users = await usersOfServiceAccount(table, account);
  if (users.length > 0) throw new InUseError(`service account ${serviceAccountId} is in use by vm ${users.join(', vm ')}`);
  try {
    await dynamodb.send(new DeleteCommand({ TableName: table, Key: keys.serviceAccount(serviceAccountId), ConditionExpression: 'attribute_exists(pk)' }));
  } catch (error) {
    if (!(error instanceof ConditionalCheckFailedException)) throw error;
  }
}
