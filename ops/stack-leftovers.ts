import {
  CloudFormationClient,
  paginateListStackResources,
  paginateListStacks,
  type StackResourceSummary,
  type StackStatus,
} from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, DeleteLogGroupCommand, DescribeLogGroupsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DeleteTableCommand, DescribeTableCommand, DynamoDBClient, UpdateTableCommand, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import {
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetRoleCommand,
  IAMClient,
  paginateListAttachedRolePolicies,
  paginateListRolePolicies,
} from '@aws-sdk/client-iam';
import { DeleteAliasCommand, DescribeKeyCommand, KMSClient, ScheduleKeyDeletionCommand } from '@aws-sdk/client-kms';
import { DeleteBucketCommand, DeleteObjectsCommand, HeadBucketCommand, ListObjectVersionsCommand, S3Client } from '@aws-sdk/client-s3';

/**
 * What a deleted stack left behind: the resources CloudFormation skipped when it deleted the stack
 * (DeletionPolicy Retain or RetainExceptOnCreate: the metadata table, the buckets, the KMS keys and
 * their aliases, the API's access log group and CloudWatch role). A fixed-name table, bucket or alias keeps a
 * redeploy under the same stack name from creating its own, and all of them cost money.
 *
 * Found in two places: CloudFormation's record of the deleted stack (its resources by stack id,
 * kept 90 days on AWS; retained ones are DELETE_SKIPPED), and, for what has a name of its own in
 * the template (TableName, BucketName, AliasName, LogGroupName, RoleName), that name resolved for the stack's
 * account and region, which also finds leftovers after the record is gone (or on an emulator that
 * keeps none). Only what still exists is listed, and nothing a live stack of that name holds.
 */
export interface Leftover {
  logicalId: string;
  type: string;
  physicalId: string;
  /** Where it was found. */
  source: 'stack record' | 'template';
}

export interface AwsClientSettings {
  region: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** The parts of a synthesized template this reads. */
export interface RetainingTemplate {
  Resources: Record<string, { Type: string; DeletionPolicy?: string; Properties?: Record<string, unknown> }>;
}

/** The leftover types this tool removes; other retained types (API Gateway's account settings) are settings, nothing to delete. */
export const REMOVABLE_TYPES = [
  'AWS::DynamoDB::GlobalTable',
  'AWS::DynamoDB::Table',
  'AWS::S3::Bucket',
  'AWS::KMS::Alias',
  'AWS::KMS::Key',
  'AWS::Logs::LogGroup',
  'AWS::IAM::Role',
];

const NAME_PROPERTIES: Record<string, string> = {
  'AWS::DynamoDB::GlobalTable': 'TableName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::KMS::Alias': 'AliasName',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::IAM::Role': 'RoleName',
};

/**
 * What the deleted stacks named `stackName` retained and still exists, minus what a live stack of
 * that name holds. `template` (the stack's synthesized template) adds the retained resources it
 * names; `account` is needed for that only when no stack of that name was ever seen (its id names it).
 */
export async function findLeftovers(
  settings: AwsClientSettings,
  stackName: string,
  options: { template?: RetainingTemplate; account?: string } = {},
): Promise<Leftover[]> {
  const cloudFormation = new CloudFormationClient(settings);
  const deleted: string[] = [];
  const live: string[] = [];
  for await (const page of paginateListStacks({ client: cloudFormation }, {})) {
    for (const stack of page.StackSummaries ?? []) {
      if (stack.StackName !== stackName || !stack.StackId) continue;
      (stack.StackStatus === ('DELETE_COMPLETE' satisfies StackStatus) ? deleted : live).push(stack.StackId);
    }
  }
  const held = new Set<string>();
  for (const stackId of live) {
    for (const resource of await resourcesOf(cloudFormation, stackId)) held.add(`${resource.ResourceType} ${resource.PhysicalResourceId}`);
  }
  const candidates = new Map<string, Leftover>();
  const add = (leftover: Leftover) => {
    const key = `${leftover.type} ${leftover.physicalId}`;
    if (REMOVABLE_TYPES.includes(leftover.type) && !held.has(key) && !candidates.has(key)) candidates.set(key, leftover);
  };
  for (const stackId of deleted) {
    for (const resource of await resourcesOf(cloudFormation, stackId)) {
      if (resource.ResourceStatus !== 'DELETE_SKIPPED' || !resource.PhysicalResourceId) continue;
      add({ logicalId: resource.LogicalResourceId!, type: resource.ResourceType!, physicalId: resource.PhysicalResourceId, source: 'stack record' });
    }
  }
  if (options.template) {
    const account = options.account ?? [...deleted, ...live][0]?.split(':')[4];
    if (!account) throw new Error(`no stack named ${stackName} was ever seen in ${settings.region}: give the account to resolve the template's names`);
    const pseudo: Record<string, string> = {
      'AWS::AccountId': account,
      'AWS::Region': settings.region,
      'AWS::StackName': stackName,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
    };
    for (const [logicalId, resource] of Object.entries(options.template.Resources)) {
      if (!['Retain', 'RetainExceptOnCreate'].includes(resource.DeletionPolicy ?? '')) continue;
      const property = NAME_PROPERTIES[resource.Type];
      const name = property && resolveName(resource.Properties?.[property], pseudo);
      if (name) add({ logicalId, type: resource.Type, physicalId: name, source: 'template' });
    }
  }
  const found: Leftover[] = [];
  for (const candidate of candidates.values()) if (await stillThere(settings, candidate)) found.push(candidate);
  return found;
}

async function resourcesOf(cloudFormation: CloudFormationClient, stackId: string): Promise<StackResourceSummary[]> {
  const resources: StackResourceSummary[] = [];
  for await (const page of paginateListStackResources({ client: cloudFormation }, { StackName: stackId })) {
    resources.push(...(page.StackResourceSummaries ?? []));
  }
  return resources;
}

/** A name given literally or built from pseudo parameters only (Fn::Join, Fn::Sub, Ref); undefined when it names other resources. */
function resolveName(value: unknown, pseudo: Record<string, string>): string | undefined {
  if (typeof value === 'string') return value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const [[intrinsic, argument]] = Object.entries(value) as [[string, unknown]];
  switch (intrinsic) {
    case 'Ref':
      return pseudo[argument as string];
    case 'Fn::Join': {
      const [separator, parts] = argument as [string, unknown[]];
      const resolved = parts.map((part) => resolveName(part, pseudo));
      return resolved.every((part) => part !== undefined) ? resolved.join(separator) : undefined;
    }
    case 'Fn::Sub': {
      if (typeof argument !== 'string') return undefined;
      const names = [...argument.matchAll(/\$\{([^}]+)\}/g)].map((match) => match[1]!);
      if (!names.every((name) => name in pseudo)) return undefined;
      return argument.replace(/\$\{([^}]+)\}/g, (_, name: string) => pseudo[name]!);
    }
    default:
      return undefined;
  }
}

/** Whether a leftover still exists (a KMS key: and is not already pending deletion). */
async function stillThere(settings: AwsClientSettings, leftover: Leftover): Promise<boolean> {
  try {
    switch (leftover.type) {
      case 'AWS::DynamoDB::GlobalTable':
      case 'AWS::DynamoDB::Table':
        await new DynamoDBClient(settings).send(new DescribeTableCommand({ TableName: leftover.physicalId }));
        return true;
      case 'AWS::S3::Bucket':
        await s3Client(settings).send(new HeadBucketCommand({ Bucket: leftover.physicalId }));
        return true;
      case 'AWS::KMS::Key': {
        const { KeyMetadata } = await new KMSClient(settings).send(new DescribeKeyCommand({ KeyId: leftover.physicalId }));
        return KeyMetadata?.KeyState !== 'PendingDeletion';
      }
      case 'AWS::KMS::Alias':
        await new KMSClient(settings).send(new DescribeKeyCommand({ KeyId: leftover.physicalId }));
        return true;
      case 'AWS::Logs::LogGroup': {
        const { logGroups } = await new CloudWatchLogsClient(settings).send(new DescribeLogGroupsCommand({ logGroupNamePrefix: leftover.physicalId }));
        return !!logGroups?.some((group) => group.logGroupName === leftover.physicalId);
      }
      case 'AWS::IAM::Role':
        await new IAMClient(settings).send(new GetRoleCommand({ RoleName: leftover.physicalId }));
        return true;
      default:
        return true;
    }
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

function isNotFound(error: unknown): boolean {
  return ['ResourceNotFoundException', 'NoSuchBucket', 'NotFound', 'NotFoundException', 'NoSuchEntityException', 'NoSuchEntity'].includes(
    (error as Error).name,
  );
}

function s3Client(settings: AwsClientSettings): S3Client {
  // An emulator on 127.0.0.1 has no bucket host names.
  return new S3Client({ ...settings, forcePathStyle: !!(settings.endpoint ?? process.env.AWS_ENDPOINT_URL) });
}

/** What removing one leftover did, in words for the operator. */
export type Removal = { leftover: Leftover; outcome: 'deleted' | 'deletion scheduled (7 days)' | 'already gone' | 'kept' | 'failed'; detail?: string };

/**
 * Removes one leftover, as an operator would by hand: a table loses its deletion protection and
 * its other regions' replicas first; a bucket is emptied of every object version first; a KMS key
 * is scheduled for deletion after AWS's shortest waiting period (7 days); a role loses its
 * policies first.
 */
export async function removeLeftover(settings: AwsClientSettings, leftover: Leftover): Promise<Removal> {
  const done = (outcome: Removal['outcome'], detail?: string): Removal => ({ leftover, outcome, detail });
  try {
    switch (leftover.type) {
      case 'AWS::DynamoDB::GlobalTable':
      case 'AWS::DynamoDB::Table':
        await deleteTable(new DynamoDBClient(settings), leftover.physicalId, settings.region);
        return done('deleted');
      case 'AWS::S3::Bucket':
        await deleteBucket(s3Client(settings), leftover.physicalId);
        return done('deleted');
      case 'AWS::KMS::Alias':
        await new KMSClient(settings).send(new DeleteAliasCommand({ AliasName: leftover.physicalId }));
        return done('deleted');
      case 'AWS::KMS::Key': {
        const kms = new KMSClient(settings);
        const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: leftover.physicalId }));
        if (KeyMetadata?.KeyState === 'PendingDeletion') return done('already gone', `deletion pending until ${KeyMetadata.DeletionDate?.toISOString()}`);
        await kms.send(new ScheduleKeyDeletionCommand({ KeyId: leftover.physicalId, PendingWindowInDays: 7 }));
        return done('deletion scheduled (7 days)');
      }
      case 'AWS::Logs::LogGroup':
        await new CloudWatchLogsClient(settings).send(new DeleteLogGroupCommand({ logGroupName: leftover.physicalId }));
        return done('deleted');
      case 'AWS::IAM::Role':
        await deleteRole(new IAMClient(settings), leftover.physicalId);
        return done('deleted');
      default:
        return done('kept', 'not a type this tool removes (nothing that blocks a redeploy or is billed)');
    }
  } catch (error) {
    if (isNotFound(error)) return done('already gone');
    return done('failed', `${(error as Error).name}: ${(error as Error).message}`);
  }
}

async function deleteTable(dynamodb: DynamoDBClient, tableName: string, region: string): Promise<void> {
  const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: tableName }));
  if (Table?.DeletionProtectionEnabled) await dynamodb.send(new UpdateTableCommand({ TableName: tableName, DeletionProtectionEnabled: false }));
  // A global table is deleted region by region: its other replicas first, one update at a time.
  for (const replica of Table?.Replicas ?? []) {
    if (!replica.RegionName || replica.RegionName === region) continue;
    await waitUntilTableExists({ client: dynamodb, maxWaitTime: 600 }, { TableName: tableName });
    await dynamodb.send(new UpdateTableCommand({ TableName: tableName, ReplicaUpdates: [{ Delete: { RegionName: replica.RegionName } }] }));
  }
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 600 }, { TableName: tableName });
  await dynamodb.send(new DeleteTableCommand({ TableName: tableName }));
}

async function deleteBucket(s3: S3Client, bucket: string): Promise<void> {
  // Each round lists from the start what is left (at most 1000 versions and delete markers) and deletes it.
  for (;;) {
    const page = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    const objects = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].map((entry) => ({ Key: entry.Key!, VersionId: entry.VersionId }));
    if (!objects.length) break;
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }));
  }
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
}

async function deleteRole(iam: IAMClient, roleName: string): Promise<void> {
  for await (const page of paginateListAttachedRolePolicies({ client: iam }, { RoleName: roleName })) {
    for (const policy of page.AttachedPolicies ?? []) await iam.send(new DetachRolePolicyCommand({ RoleName: roleName, PolicyArn: policy.PolicyArn }));
  }
  for await (const page of paginateListRolePolicies({ client: iam }, { RoleName: roleName })) {
    for (const policyName of page.PolicyNames ?? []) await iam.send(new DeleteRolePolicyCommand({ RoleName: roleName, PolicyName: policyName }));
  }
  await iam.send(new DeleteRoleCommand({ RoleName: roleName }));
}
