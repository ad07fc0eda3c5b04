import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  waitUntilTableExists,
  type CreateTableCommandInput,
} from '@aws-sdk/client-dynamodb';
import {
  AlreadyExistsException,
  CreateAliasCommand,
  CreateKeyCommand,
  DescribeKeyCommand,
  KMSClient,
  type KeyMetadata,
  NotFoundException,
  UpdateAliasCommand,
} from '@aws-sdk/client-kms';
import { keyIdOf } from '#tokens/kms-public-keys.ts';
import { BucketAlreadyOwnedByYou, CreateBucketCommand, S3Client, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { resourcesOfType, type CfnTemplate, type Resolver } from './template.ts';

const dynamodb = new DynamoDBClient({});
const sqs = new SQSClient({});
const kms = new KMSClient({});
const s3 = new S3Client({ forcePathStyle: true });

/**
 * Creates the template's KMS keys, DynamoDB tables and SQS queues in the local AWS, and records
 * their names and ARNs in the resolver. Safe to run again: existing resources are reused.
 */
export async function provision(template: CfnTemplate, resolver: Resolver): Promise<void> {
  for (const [id, resource] of resourcesOfType(template, 'AWS::KMS::Key')) await provisionKey(id, resource.Properties ?? {}, resolver);
  for (const [, resource] of resourcesOfType(template, 'AWS::KMS::Alias'))
    await provisionAlias(resolver.resolve(resource.Properties ?? {}) as Record<string, string>);
  for (const [id, resource] of resourcesOfType(template, 'AWS::DynamoDB::GlobalTable')) await provisionTable(id, resource.Properties ?? {}, resolver);
  for (const [id, resource] of resourcesOfType(template, 'AWS::DynamoDB::Table')) await provisionTable(id, resource.Properties ?? {}, resolver);
  await provisionQueues(template, resolver);
  for (const [id, resource] of resourcesOfType(template, 'AWS::S3::Bucket'))
    await provisionBucket(id, resolver.resolve(resource.Properties ?? {}) as Record<string, unknown>, resolver);
}

/** A bucket with the template's name, or else one named after the stack and logical id (S3 names are lowercase), in the stack's region. */
async function provisionBucket(id: string, props: Record<string, unknown>, resolver: Resolver) {
  const name = (props.BucketName as string | undefined) ?? physicalName(resolver, id).toLowerCase().slice(0, 63);
  const region = resolver.pseudo.region;
  try {
    await s3.send(
      new CreateBucketCommand({
        Bucket: name,
        ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } }),
      }),
    );
  } catch (error) {
    if (!(error instanceof BucketAlreadyOwnedByYou)) throw error;
  }
  resolver.setRef(id, name);
  resolver.setAttribute(id, 'Arn', `arn:aws:s3:::${name}`);
  resolver.setAttribute(id, 'DomainName', `${name}.s3.amazonaws.com`);
  resolver.setAttribute(id, 'RegionalDomainName', `${name}.s3.${region}.amazonaws.com`);
}

const physicalName = (resolver: Resolver, id: string) => `${resolver.pseudo.stackName}-${id}`;

async function provisionKey(id: string, properties: Record<string, unknown>, resolver: Resolver) {
  const alias = `alias/${physicalName(resolver, id)}`;
  let metadata: KeyMetadata | undefined;
  try {
    metadata = (await kms.send(new DescribeKeyCommand({ KeyId: alias }))).KeyMetadata;
  } catch (error) {
    if (!(error instanceof NotFoundException)) throw error;
    metadata = (
      await kms.send(
        new CreateKeyCommand({
          Description: properties.Description as string | undefined,
          KeySpec: (properties.KeySpec as never) ?? 'SYMMETRIC_DEFAULT',
          KeyUsage: (properties.KeyUsage as never) ?? 'ENCRYPT_DECRYPT',
        }),
      )
    ).KeyMetadata;
    await kms.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: metadata!.KeyId }));
  }
  resolver.setRef(id, metadata!.KeyId!);
  resolver.setAttribute(id, 'Arn', metadata!.Arn!);
  resolver.setAttribute(id, 'KeyId', metadata!.KeyId!);
}

/** The template's own aliases (e.g. `alias/stratoplane/api-tokens`), pointed at the keys made above. */
async function provisionAlias({ AliasName, TargetKeyId }: Record<string, string>) {
  const target = keyIdOf(TargetKeyId!);
  try {
    await kms.send(new CreateAliasCommand({ AliasName, TargetKeyId: target }));
  } catch (error) {
    if (!(error instanceof AlreadyExistsException)) throw error;
    await kms.send(new UpdateAliasCommand({ AliasName, TargetKeyId: target }));
  }
}

async function provisionTable(id: string, properties: Record<string, unknown>, resolver: Resolver) {
  const props = resolver.resolve(properties) as Record<string, unknown>;
  const TableName = (props.TableName as string | undefined) ?? physicalName(resolver, id);
  const stream = props.StreamSpecification as { StreamViewType: string } | undefined;
  const input: CreateTableCommandInput = {
    TableName,
    AttributeDefinitions: props.AttributeDefinitions as never,
    KeySchema: props.KeySchema as never,
    BillingMode: 'PAY_PER_REQUEST',
    GlobalSecondaryIndexes: (props.GlobalSecondaryIndexes as { IndexName: string; KeySchema: never; Projection: never }[] | undefined)?.map(
      ({ IndexName, KeySchema, Projection }) => ({ IndexName, KeySchema, Projection }),
    ),
    StreamSpecification: stream ? { StreamEnabled: true, StreamViewType: stream.StreamViewType as never } : undefined,
  };
  try {
    await dynamodb.send(new CreateTableCommand(input));
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  await waitUntilTableExists({ client: dynamodb, maxWaitTime: 60 }, { TableName });
  const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName }));
  resolver.setRef(id, TableName);
  resolver.setAttribute(id, 'Arn', Table!.TableArn!);
  if (Table!.LatestStreamArn) resolver.setAttribute(id, 'StreamArn', Table!.LatestStreamArn);
}

/** Queues are created in dependency order: a dead-letter queue before the queue that names it. */
async function provisionQueues(template: CfnTemplate, resolver: Resolver) {
  const pending = new Map(resourcesOfType(template, 'AWS::SQS::Queue'));
  while (pending.size > 0) {
    const ready = [...pending].filter(([, resource]) => {
      const target = (resource.Properties?.RedrivePolicy as { deadLetterTargetArn?: { 'Fn::GetAtt'?: string[] } } | undefined)?.deadLetterTargetArn;
      const dependency = target?.['Fn::GetAtt']?.[0];
      return !dependency || !pending.has(dependency);
    });
    if (ready.length === 0) throw new Error(`queues form a redrive cycle: ${[...pending.keys()].join(', ')}`);
    for (const [id, resource] of ready) {
      await provisionQueue(id, resolver.resolve(resource.Properties ?? {}) as Record<string, unknown>, resolver);
      pending.delete(id);
    }
  }
}

async function provisionQueue(id: string, props: Record<string, unknown>, resolver: Resolver) {
  const fifo = props.FifoQueue === true || props.FifoQueue === 'true';
  const QueueName = (props.QueueName as string | undefined) ?? `${physicalName(resolver, id)}${fifo ? '.fifo' : ''}`;
  const attributes: Record<string, string> = {};
  for (const name of [
    'VisibilityTimeout',
    'MessageRetentionPeriod',
    'DelaySeconds',
    'ReceiveMessageWaitTimeSeconds',
    'KmsMasterKeyId',
    'FifoQueue',
    'ContentBasedDeduplication',
    'SqsManagedSseEnabled',
  ]) {
    if (props[name] !== undefined) attributes[name] = String(props[name]);
  }
  if (props.RedrivePolicy) attributes.RedrivePolicy = JSON.stringify(props.RedrivePolicy);
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName, Attributes: attributes }));
  const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
  resolver.setRef(id, QueueUrl!);
  resolver.setAttribute(id, 'Arn', Attributes!.QueueArn!);
  resolver.setAttribute(id, 'QueueName', QueueName);
  resolver.setAttribute(id, 'QueueUrl', QueueUrl!);
}
