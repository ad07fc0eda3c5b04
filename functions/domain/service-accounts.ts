import { PutCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import type { CreateServiceAccountRequest } from '#events/api.ts';
import type { ServiceAccountItem } from '#events/records.ts';
import { dynamodb } from '../commons/clients.ts';
import { NotFoundError } from './errors.ts';
import { newId } from './networks.ts';
import { queryPage } from './pagination.ts';
import { cancellationCodes, getItem } from './store.ts';
import { indexes, indexKeys, keys } from './table-keys.ts';
import { getVm, toVmView, type VmView } from './vms.ts';

export interface ServiceAccountView {
  serviceAccountId: string;
  tenantId: string;
  name: string;
  createdAt: string;
}

const toView = ({ serviceAccountId, tenantId, name, createdAt }: ServiceAccountItem): ServiceAccountView => ({ serviceAccountId, tenantId, name, createdAt });

export async function createServiceAccount(table: string, tenantId: string, request: CreateServiceAccountRequest): Promise<ServiceAccountView> {
  const serviceAccountId = newId('sa');
  const item: ServiceAccountItem & Record<string, unknown> = {
    ...keys.serviceAccount(serviceAccountId),
    kind: 'service-account',
    serviceAccountId,
    tenantId,
    name: request.name,
    createdAt: new Date().toISOString(),
    gsi1pk: indexKeys.serviceAccountsOfTenant(tenantId),
    gsi1sk: serviceAccountId,
  };
  await dynamodb.send(new PutCommand({ TableName: table, Item: item, ConditionExpression: 'attribute_not_exists(pk)' }));
  return toView(item);
}

/** A tenant's service account; another tenant's is as unknown as one that does not exist. */
export async function getServiceAccount(table: string, tenantId: string, serviceAccountId: string): Promise<ServiceAccountView> {
  const item = await getItem<ServiceAccountItem>(table, keys.serviceAccount(serviceAccountId));
  if (!item || item.tenantId !== tenantId) throw new NotFoundError('service account', serviceAccountId);
  return toView(item);
}

export async function listServiceAccounts(table: string, tenantId: string, limit: number, nextToken?: string) {
  const page = await queryPage<ServiceAccountItem>(table, { name: indexes.gsi1, partitionKey: 'gsi1pk', value: indexKeys.serviceAccountsOfTenant(tenantId) }, limit, nextToken);
  return { serviceAccounts: page.items.map(toView), nextToken: page.nextToken };
}

/**
 * Attaches a service account to a VM, replacing any other. The account is checked to exist and
 * belong to the VM's tenant in the same transaction as the write.
 */
export async function attachServiceAccount(table: string, tenantId: string, vmId: string, serviceAccountId: string): Promise<VmView> {
  const vm = await getVm(table, tenantId, vmId);
  await getServiceAccount(table, tenantId, serviceAccountId);
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

export async function detachServiceAccount(table: string, tenantId: string, vmId: string): Promise<VmView> {
  const vm = await getVm(table, tenantId, vmId);
  const updatedAt = new Date().toISOString();
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.vm(vmId),
        UpdateExpression: 'REMOVE serviceAccountId SET updatedAt = :now',
        ConditionExpression: 'tenantId = :tenant',
        ExpressionAttributeValues: { ':now': updatedAt, ':tenant': tenantId },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('vm', vmId);
    throw error;
  }
  return toVmView({ ...vm, serviceAccountId: undefined, updatedAt });
}
