import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { EgressPolicy, HostEgressPolicies } from '#events/egress.ts';
import { dynamodb } from '../commons/clients.ts';
import { NotFoundError } from './errors.ts';
import { getHost } from './hosts.ts';
import { assertHomeRegion } from './regions.ts';
import { keys } from './table-keys.ts';
import { getVm, listVmsOnHost, toVmView, type VmView } from './vms.ts';

/**
 * Sets what a VM may reach through its bridge's outbound proxy. The change reaches the VM's host
 * agent like a service-account change: the stream tells the host to fetch its VMs' policies.
 */
export async function setEgressPolicy(table: string, region: string, tenantId: string, vmId: string, egress: EgressPolicy): Promise<VmView> {
  const vm = assertHomeRegion(await getVm(table, tenantId, vmId), region, `vm ${vmId}`);
  const updatedAt = new Date().toISOString();
  try {
    await dynamodb.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.vm(vmId),
        UpdateExpression: 'SET egress = :egress, updatedAt = :now',
        ConditionExpression: 'tenantId = :tenant',
        ExpressionAttributeValues: { ':egress': egress, ':now': updatedAt, ':tenant': tenantId },
      }),
    );
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) throw new NotFoundError('vm', vmId);
    throw error;
  }
  return toVmView({ ...vm, egress, updatedAt });
}

/** The egress policies of the VMs on a host; VMs without one are left out (they reach nothing). */
export async function egressPoliciesOfHost(table: string, hostId: string): Promise<HostEgressPolicies> {
  await getHost(table, hostId);
  const vms = await listVmsOnHost(table, hostId);
  return { hostId, policies: vms.filter((vm) => vm.egress).map((vm) => ({ vmId: vm.vmId, egress: vm.egress! })) };
}
