import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { APIGatewayClient, GetAuthorizersCommand, paginateGetResources } from '@aws-sdk/client-api-gateway';
import { DescribeStacksCommand, paginateDescribeStackEvents, type StackEvent } from '@aws-sdk/client-cloudformation';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DeleteAliasCommand,
  DescribeKeyCommand,
  GetKeyRotationStatusCommand,
  KMSClient,
  paginateListAliases,
} from '@aws-sdk/client-kms';
import { GetEventSourceMappingCommand, GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { LocalAws } from '../../local/aws/local-aws.ts';
import type { CdkTarget } from '../../local/deploy/cdk-cli.ts';
import { deployFailureReasons, fakedResourceTypes, startDeployAws } from '../../local/deploy/deploy-aws.ts';
import {
  type Assembly,
  type AssemblyStack,
  bootstrap,
  clientConfig,
  cloudFormationClient,
  deploy,
  destroy,
  stackResourcesWithNested,
  synthesize,
} from '../../local/deploy/steps.ts';
import { projectRoot } from '../../local/processes.ts';
import { type CfnResource, type CfnTemplate, Resolver, readTemplate, resourcesOfType } from '../../local/template.ts';
import { findLeftovers, removeLeftover } from '../../ops/stack-leftovers.ts';

/**
 * `npm run deploy:local`'s path, step by step, for the two-region app: the real cdk CLI synthesizes
 * it (us-east-1 primary, with the global table and its replica in eu-west-1; eu-west-1 reads its
 * replica's stream ARN with a DescribeTable custom resource), bootstraps both environments and
 * deploys both stacks through CloudFormation into a LocalStack of this file's own, with the
 * project's providers for AWS::DynamoDB::GlobalTable and Custom::AWS
 * (local/aws/localstack-extensions/). What CloudFormation created is read back through the AWS
 * APIs and compared with each template, and data written in one region is read in the other.
 * Then `cdk destroy` of both and the cleanup of what they retained (ops/cleanup-stack.ts). Last, a
 * first deploy that fails half-way (an alias of the stack's name already taken): CloudFormation
 * rolls it back, deleting what it created (LocalStack's engine deletes nothing on a failed create:
 * the project's plugin local/aws/localstack-extensions/stratoplane_localstack/create_rollback.py
 * does), and the next deploy of both passes.
 *
 * One file, one emulator, one synth: each deploy here takes a minute of the two cores, and the
 * one-region app deploy:local deploys by default is the primary stack without the replica.
 */
const primary = 'us-east-1';
const replica = 'eu-west-1';
const regions = [primary, replica];
const workDir = path.join(projectRoot, '.local-run', `cdk-deploy-test-${process.pid}`);

let aws: LocalAws;
let target: CdkTarget;
let assembly: Assembly;
const stacks = new Map<string, AssemblyStack>();
/** Each region's template with its nested route stacks' resources (cdk/constructs/route-stacks.ts), as CloudFormation holds them. */
const templates = new Map<string, CfnTemplate>();
/** Tests that passed: the logs are removed only when all did. */
let passed = 0;

const localStackLog = path.join(workDir, 'localstack.log');

beforeAll(async () => {
  mkdirSync(workDir, { recursive: true });
  const logFile = path.join(workDir, 'cdk.log');
  // The synth needs no emulator: both at once.
  [aws, assembly] = await Promise.all([
    startDeployAws({ logFile: localStackLog }),
    // The bundles the test run's own runner made are these functions' (cdk/bundle-fingerprint.ts): ~90 s not spent again.
    synthesize({ region: primary, logFile }, path.join(workDir, 'cdk.out'), [`regions=${regions.join(',')}`], [path.dirname(inject('templateFile'))]),
  ]);
  target = { endpoint: aws.endpoint, region: primary, logFile };
  expect(assembly.stacks.map((stack) => stack.region).sort()).toEqual([...regions].sort());
  for (const stack of assembly.stacks) {
    stacks.set(stack.region, stack);
    templates.set(stack.region, readTemplate(stack.templateFile));
  }
  await bootstrap(target, assembly);
}, 300_000);

afterAll(async () => {
  await aws?.stop();
  // Kept when something failed: the CLI's and LocalStack's logs say why.
  if (passed === 3) rmSync(workDir, { recursive: true, force: true });
  else console.error(`cdk-deploy: logs kept in ${path.relative(projectRoot, workDir)}/`);
});

const dynamodb = (region: string) => new DynamoDBClient(clientConfig(target, region));
const templatedResourceCount = () => assembly.stacks.reduce((sum, stack) => sum + stack.resourceCount, 0);

describe('cdk deploy of two regions through CloudFormation into LocalStack', () => {
  it('creates every resource of both templates; the global table has its replica in the second region, whose stack streams it; data written in one region is read in the other', async () => {
    const result = await deploy(target, assembly).catch(withLocalStackReasons);
    expect(result).toMatchObject({ stacks: 2, resources: templatedResourceCount() });
    expect(fakedResourceTypes(localStackLog)).toEqual([]);
    for (const region of regions) await expectDeployedAsTemplated(region);

    // The primary's template defines the table with both regions; DynamoDB lists the replica.
    const globalTables = resourcesOfType(templates.get(primary)!, 'AWS::DynamoDB::GlobalTable');
    expect(globalTables).toHaveLength(1);
    const [tableLogicalId, tableResource] = globalTables[0]!;
    const tableName = tableResource.Properties!.TableName as string;
    expect((tableResource.Properties!.Replicas as { Region: string }[]).map((entry) => entry.Region).sort()).toEqual([...regions].sort());
    expect(resourcesOfType(templates.get(replica)!, 'AWS::DynamoDB::GlobalTable')).toEqual([]);
    const primaryTable = (await dynamodb(primary).send(new DescribeTableCommand({ TableName: tableName }))).Table!;
    expect(primaryTable.TableStatus).toBe('ACTIVE');
    expect(primaryTable.Replicas?.map((entry) => ({ region: entry.RegionName, status: entry.ReplicaStatus }))).toEqual([{ region: replica, status: 'ACTIVE' }]);
    const physicalTable = (await stackResourcesWithNested(target, stacks.get(primary)!)).find((resource) => resource.LogicalResourceId === tableLogicalId);
    expect(physicalTable?.PhysicalResourceId).toBe(tableName);
    const replicaTable = (await dynamodb(replica).send(new DescribeTableCommand({ TableName: tableName }))).Table!;
    expect(replicaTable.TableStatus).toBe('ACTIVE');
    expect(replicaTable.TableArn).toBe(`arn:aws:dynamodb:${replica}:000000000000:table/${tableName}`);
    expect(replicaTable.LatestStreamArn).toMatch(new RegExp(`^arn:aws:dynamodb:${replica}:000000000000:table/${tableName}/stream/`));

    // The replica stack's DescribeTable custom resource answered with the replica, and every
    // mapping the template feeds from it reads the replica's stream.
    const replicaTemplate = templates.get(replica)!;
    const customResources = resourcesOfType(replicaTemplate, 'Custom::AWS');
    expect(customResources).toHaveLength(1);
    const [[streamLogicalId]] = customResources as [[string, unknown]];
    const replicaPhysical = new Map(
      (await stackResourcesWithNested(target, stacks.get(replica)!)).map((resource) => [resource.LogicalResourceId!, resource.PhysicalResourceId!]),
    );
    expect(replicaPhysical.get(streamLogicalId)).toBe(replicaTable.TableArn);
    const streamMappings = resourcesOfType(replicaTemplate, 'AWS::Lambda::EventSourceMapping').filter(
      ([, resource]) => JSON.stringify(resource.Properties?.EventSourceArn) === JSON.stringify({ 'Fn::GetAtt': [streamLogicalId, 'Table.LatestStreamArn'] }),
    );
    expect(streamMappings.length).toBeGreaterThan(0);
    const lambda = new LambdaClient(clientConfig(target, replica));
    for (const [logicalId] of streamMappings) {
      const mapping = await lambda.send(new GetEventSourceMappingCommand({ UUID: replicaPhysical.get(logicalId)! }));
      expect({ logicalId, source: mapping.EventSourceArn }).toEqual({ logicalId, source: replicaTable.LatestStreamArn });
    }

    // A write in either region is read in the other.
    for (const [from, to] of [
      [primary, replica],
      [replica, primary],
    ] as const) {
      const key = { pk: { S: `TWO-REGIONS#${from}` }, sk: { S: 'item' } };
      await dynamodb(from).send(new PutItemCommand({ TableName: tableName, Item: { ...key, writtenIn: { S: from } } }));
      const { Item } = await dynamodb(to).send(new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }));
      expect({ from, to, writtenIn: Item?.writtenIn?.S }).toEqual({ from, to, writtenIn: from });
    }
    passed++;
  }, 300_000);

  it('destroys both stacks, the replica region first; what they retained is found and removed by the cleanup tool', async () => {
    const stack = stacks.get(primary)!;
    const template = templates.get(primary)!;
    const settings = clientConfig(target, primary);
    const physical = new Map((await stackResourcesWithNested(target, stack)).map((resource) => [resource.LogicalResourceId!, resource.PhysicalResourceId!]));
    await destroy(target, assembly);
    for (const region of regions) {
      const stackName = stacks.get(region)!.stackName;
      const found = await cloudFormationClient(target, region)
        .send(new DescribeStacksCommand({ StackName: stackName }))
        .then(({ Stacks }) => Stacks?.[0]?.StackStatus)
        .catch((error: Error) => (/does not exist/.test(error.message) ? 'gone' : Promise.reject(error)));
      expect({ region, found }).toEqual({ region, found: expect.stringMatching(/^(gone|DELETE_COMPLETE)$/) });
    }

    // What AWS keeps of a deleted stack: every resource whose DeletionPolicy retains it. LocalStack
    // 2026.3 deletes RetainExceptOnCreate resources with the stack (its engine knows only Retain),
    // so the named ones a redeploy would collide with on AWS (the metadata table, the images
    // bucket, the key aliases) are put back here as AWS would have left them, with data, for the
    // tool to find by the template's names.
    const retainedNamed = Object.entries(template.Resources).filter(
      ([, resource]) =>
        ['Retain', 'RetainExceptOnCreate'].includes((resource as CfnResource & { DeletionPolicy?: string }).DeletionPolicy ?? '') &&
        ((resource.Type.startsWith('AWS::DynamoDB::') && resource.Properties?.TableName) ||
          (resource.Type === 'AWS::S3::Bucket' && resource.Properties?.BucketName) ||
          resource.Type === 'AWS::KMS::Alias'),
    );
    expect(retainedNamed.length).toBeGreaterThan(0);
    // A table's or bucket's physical id is its name; an alias's name is the template's.
    const nameOf = (logicalId: string, resource: CfnResource) =>
      resource.Type === 'AWS::KMS::Alias' ? (resource.Properties!.AliasName as string) : physical.get(logicalId)!;
    const s3 = new S3Client({ ...settings, forcePathStyle: true });
    const kms = new KMSClient(settings);
    for (const [logicalId, resource] of retainedNamed) {
      const name = nameOf(logicalId, resource);
      if (resource.Type === 'AWS::KMS::Alias') {
        const { KeyMetadata } = await kms.send(new CreateKeyCommand({}));
        await kms.send(new CreateAliasCommand({ AliasName: name, TargetKeyId: KeyMetadata!.KeyId })).catch(alreadyThere);
      } else if (resource.Type === 'AWS::S3::Bucket') {
        await s3.send(new CreateBucketCommand({ Bucket: name })).catch(alreadyThere);
        await s3.send(new PutObjectCommand({ Bucket: name, Key: 'images/kept.raw', Body: 'kept' }));
      } else {
        await dynamodb(primary)
          .send(
            new CreateTableCommand({
              TableName: name,
              BillingMode: 'PAY_PER_REQUEST',
              AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
              KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
            }),
          )
          .catch(alreadyThere);
        await dynamodb(primary).send(new PutItemCommand({ TableName: name, Item: { pk: { S: 'kept' } } }));
      }
    }

    const leftovers = await findLeftovers(settings, stack.stackName, { template });
    expect(leftovers.map(({ logicalId, physicalId }) => ({ logicalId, physicalId })).sort(byLogicalId)).toEqual(
      retainedNamed.map(([logicalId, resource]) => ({ logicalId, physicalId: nameOf(logicalId, resource) })).sort(byLogicalId),
    );
    for (const leftover of leftovers) expect((await removeLeftover(settings, leftover)).outcome).toBe('deleted');
    expect(await findLeftovers(settings, stack.stackName, { template })).toEqual([]);
    for (const leftover of leftovers) expect((await removeLeftover(settings, leftover)).outcome).toBe('already gone');
    // The replica region's stack retains its own named resources: the same tool clears them.
    const replicaSettings = clientConfig(target, replica);
    const replicaStack = stacks.get(replica)!;
    for (const leftover of await findLeftovers(replicaSettings, replicaStack.stackName, { template: templates.get(replica)! }))
      await removeLeftover(replicaSettings, leftover);
    expect(await findLeftovers(replicaSettings, replicaStack.stackName, { template: templates.get(replica)! })).toEqual([]);
    passed++;
  }, 240_000);

  it('rolls a first deploy that fails half-way back clean (what it created deleted, retained kinds included), and the next deploy of both passes', async () => {
    const stack = stacks.get(primary)!;
    const template = templates.get(primary)!;
    const settings = clientConfig(target, primary);
    const kms = new KMSClient(settings);

    // Someone else's alias under one of the stack's alias names: CloudFormation gets as far as that
    // alias (after the keys, tables, buckets, queues and functions it needs) and fails there.
    const aliases = resourcesOfType(template, 'AWS::KMS::Alias');
    const [collidingLogicalId, collidingAlias] = aliases[aliases.length - 1]!;
    const aliasName = collidingAlias.Properties!.AliasName as string;
    const { KeyMetadata: foreignKey } = await kms.send(new CreateKeyCommand({ Description: 'not the stack’s' }));
    await kms.send(new CreateAliasCommand({ AliasName: aliasName, TargetKeyId: foreignKey!.KeyId }));
    await expect(deploy(target, { ...assembly, stacks: [stack] })).rejects.toThrow(/cdk deploy failed/);

    const cloudFormation = cloudFormationClient(target, primary);
    const { Stacks } = await cloudFormation.send(new DescribeStacksCommand({ StackName: stack.stackName }));
    expect(Stacks?.[0]?.StackStatus).toBe('ROLLBACK_COMPLETE');
    const events: StackEvent[] = [];
    for await (const page of paginateDescribeStackEvents({ client: cloudFormation }, { StackName: stack.stackName })) events.push(...(page.StackEvents ?? []));
    const statusesOf = (logicalId: string) => events.filter((event) => event.LogicalResourceId === logicalId).map((event) => event.ResourceStatus);
    expect(statusesOf(collidingLogicalId)).toContain('CREATE_FAILED');
    const created = [...new Set(events.filter((event) => event.ResourceStatus === 'CREATE_COMPLETE').map((event) => event.LogicalResourceId!))];
    // Half-way: much was created before the failure, and not all.
    expect(created.length).toBeGreaterThan(10);
    expect(created.length).toBeLessThan(Object.keys(template.Resources).length);
    const retainedOnDelete = created.filter(
      (logicalId) => (template.Resources[logicalId] as { DeletionPolicy?: string } | undefined)?.DeletionPolicy === 'RetainExceptOnCreate',
    );
    expect(retainedOnDelete.length).toBeGreaterThan(0);
    for (const logicalId of created)
      expect({ logicalId, statuses: statusesOf(logicalId) }).toEqual({ logicalId, statuses: expect.arrayContaining(['DELETE_COMPLETE']) });

    // And it is gone, as AWS sees it: no named table, bucket or alias of the stack's (but the foreign
    // alias, still on its own key), and every key it created waits for its deletion.
    const leftovers = await findLeftovers(settings, stack.stackName, { template });
    expect(leftovers.map(({ physicalId }) => physicalId)).toEqual([aliasName]);
    const physicalOf = (logicalId: string) =>
      events.find((event) => event.LogicalResourceId === logicalId && event.ResourceStatus === 'CREATE_COMPLETE')?.PhysicalResourceId;
    const createdKeys = created.filter((logicalId) => template.Resources[logicalId]?.Type === 'AWS::KMS::Key');
    expect(createdKeys.length).toBeGreaterThan(0);
    for (const logicalId of createdKeys) {
      const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: physicalOf(logicalId) }));
      expect({ logicalId, state: KeyMetadata?.KeyState }).toEqual({ logicalId, state: 'PendingDeletion' });
    }
    const lambda = new LambdaClient(settings);
    for (const logicalId of created.filter((id) => template.Resources[id]?.Type === 'AWS::Lambda::Function')) {
      await expect(lambda.send(new GetFunctionConfigurationCommand({ FunctionName: physicalOf(logicalId) })), logicalId).rejects.toThrow(/not found/i);
    }

    // The colliding alias removed, the same deploy goes through (CDK deletes the rolled-back stack
    // first), and so does the replica region's, after a destroy and cleanup of both.
    await kms.send(new DeleteAliasCommand({ AliasName: aliasName }));
    const again = await deploy(target, assembly).catch(withLocalStackReasons);
    expect(again).toMatchObject({ stacks: 2, resources: templatedResourceCount() });
    for (const region of regions) await expectDeployedAsTemplated(region);
    expect(fakedResourceTypes(localStackLog)).toEqual([]);
    passed++;
  }, 420_000);
});

/** A failed deploy's error, with what LocalStack logged about it. */
function withLocalStackReasons(error: Error): never {
  throw new Error(`${error.message}\nLocalStack logged:\n${deployFailureReasons(localStackLog).join('\n')}`);
}

const byLogicalId = (a: { logicalId: string }, b: { logicalId: string }) => a.logicalId.localeCompare(b.logicalId);

/** Creating what LocalStack kept after all is no failure: it is there, as on AWS. */
function alreadyThere(error: Error): void {
  if (!['ResourceInUseException', 'BucketAlreadyOwnedByYou', 'BucketAlreadyExists', 'AlreadyExistsException'].includes(error.name)) throw error;
}

/** Reads back what CloudFormation created in `region` and compares it with its template, resolved against the stack's physical ids. */
async function expectDeployedAsTemplated(region: string): Promise<void> {
  const stack = stacks.get(region)!;
  const template = templates.get(region)!;
  const { Stacks } = await cloudFormationClient(target, region).send(new DescribeStacksCommand({ StackName: stack.stackName }));
  expect({ region, status: Stacks?.[0]?.StackStatus }).toEqual({ region, status: expect.stringMatching(/^(CREATE|UPDATE)_COMPLETE$/) });
  const config = clientConfig(target, region);
  const lambda = new LambdaClient(config);
  const sqs = new SQSClient(config);
  const kms = new KMSClient(config);
  const apiGateway = new APIGatewayClient(config);
  const dynamodb = new DynamoDBClient(config);

  // Every resource, the nested stacks' included: their logical IDs are distinct (readTemplate refuses two alike).
  // (CDK's metadata resource, `CDKMetadata` in each stack, is not compared.)
  const held = (await stackResourcesWithNested(target, stack)).filter((resource) => resource.ResourceType !== 'AWS::CDK::Metadata');
  const physical = new Map(held.map((resource) => [resource.LogicalResourceId!, resource.PhysicalResourceId!]));
  expect(physical.size).toBe(held.length);
  expect([...physical.keys()].sort()).toEqual(
    Object.entries(template.Resources)
      .filter(([, resource]) => resource.Type !== 'AWS::CDK::Metadata')
      .map(([logicalId]) => logicalId)
      .sort(),
  );
  const id = (logicalId: string) => physical.get(logicalId)!;
  const resolver = new Resolver(template, { region, accountId: '000000000000', partition: 'aws', stackName: stack.stackName });
  for (const [logicalId, physicalId] of physical) resolver.setRef(logicalId, physicalId);

  // The attributes the compared properties name.
  const queues = resourcesOfType(template, 'AWS::SQS::Queue');
  const queueAttributes = new Map<string, Record<string, string>>();
  for (const [logicalId] of queues) {
    const { Attributes } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: id(logicalId), AttributeNames: ['All'] }));
    queueAttributes.set(logicalId, Attributes!);
    resolver.setAttribute(logicalId, 'Arn', Attributes!.QueueArn!);
  }
  const keys = resourcesOfType(template, 'AWS::KMS::Key');
  for (const [logicalId] of keys) {
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: id(logicalId) }));
    resolver.setAttribute(logicalId, 'Arn', KeyMetadata!.Arn!);
  }
  for (const [logicalId] of [...resourcesOfType(template, 'AWS::DynamoDB::GlobalTable'), ...resourcesOfType(template, 'AWS::DynamoDB::Table')]) {
    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: id(logicalId) }));
    resolver.setAttribute(logicalId, 'Arn', Table!.TableArn!);
    if (Table!.LatestStreamArn) resolver.setAttribute(logicalId, 'StreamArn', Table!.LatestStreamArn);
  }
  // The replica stack's DescribeTable custom resource: its physical id is the replica's ARN; its mappings read that table's stream.
  for (const [logicalId] of resourcesOfType(template, 'Custom::AWS')) {
    const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: id(logicalId).split('/').pop() }));
    resolver.setAttribute(logicalId, 'Table.LatestStreamArn', Table!.LatestStreamArn!);
  }
  const functions = resourcesOfType(template, 'AWS::Lambda::Function');
  const functionConfigurations = new Map<string, Awaited<ReturnType<typeof getFunction>>>();
  const getFunction = (name: string) => lambda.send(new GetFunctionConfigurationCommand({ FunctionName: name }));
  for (const [logicalId] of functions) {
    const configuration = await getFunction(id(logicalId));
    functionConfigurations.set(logicalId, configuration);
    resolver.setAttribute(logicalId, 'Arn', configuration.FunctionArn!);
  }

  // Functions: active, with the template's runtime, handler, memory, timeout, architecture, role and settings.
  expect(functions.length).toBeGreaterThan(0);
  for (const [logicalId, resource] of functions) {
    const p = resource.Properties!;
    const deployed = functionConfigurations.get(logicalId)!;
    expect({ logicalId, state: deployed.State }).toEqual({ logicalId, state: 'Active' });
    expect({
      logicalId,
      runtime: deployed.Runtime,
      handler: deployed.Handler,
      memory: deployed.MemorySize,
      timeout: deployed.Timeout,
      architectures: deployed.Architectures,
      role: deployed.Role?.split('/').pop(),
      environment: deployed.Environment?.Variables ?? {},
    }).toEqual({
      logicalId,
      runtime: p.Runtime,
      handler: p.Handler,
      memory: p.MemorySize ?? 128,
      timeout: p.Timeout ?? 3,
      architectures: p.Architectures ?? ['x86_64'],
      role: id((p.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0]),
      environment: resolver.resolve((p.Environment as { Variables?: unknown } | undefined)?.Variables ?? {}),
    });
  }

  // Event source mappings: each function fed by its stream or queue, as the template says.
  const mappings = resourcesOfType(template, 'AWS::Lambda::EventSourceMapping');
  expect(mappings.length).toBeGreaterThan(0);
  for (const [logicalId, resource] of mappings) {
    const p = resource.Properties!;
    const deployed = await lambda.send(new GetEventSourceMappingCommand({ UUID: id(logicalId) }));
    expect({
      logicalId,
      function: deployed.FunctionArn,
      source: deployed.EventSourceArn,
      batchSize: deployed.BatchSize,
      responseTypes: deployed.FunctionResponseTypes ?? [],
    }).toEqual({
      logicalId,
      function: resolver.resolveString({ 'Fn::GetAtt': [(p.FunctionName as { Ref: string }).Ref, 'Arn'] }),
      source: resolver.resolveString(p.EventSourceArn),
      // Lambda's default batch: 10 messages from a queue, 100 records from a stream.
      batchSize: p.BatchSize ?? (resolver.resolveString(p.EventSourceArn).startsWith('arn:aws:sqs:') ? 10 : 100),
      responseTypes: p.FunctionResponseTypes ?? [],
    });
  }

  // Queues: FIFO or not, visibility, retention, encryption and redrive as templated.
  expect(queues.length).toBeGreaterThan(0);
  for (const [logicalId, resource] of queues) {
    const p = resource.Properties ?? {};
    const deployed = queueAttributes.get(logicalId)!;
    const redrive = p.RedrivePolicy as { deadLetterTargetArn: unknown; maxReceiveCount: number } | undefined;
    expect({
      logicalId,
      fifo: deployed.FifoQueue === 'true',
      visibility: Number(deployed.VisibilityTimeout),
      retention: Number(deployed.MessageRetentionPeriod),
      kmsKey: deployed.KmsMasterKeyId,
      redrive: deployed.RedrivePolicy ? JSON.parse(deployed.RedrivePolicy) : undefined,
    }).toEqual({
      logicalId,
      fifo: p.FifoQueue === true,
      visibility: p.VisibilityTimeout ?? 30,
      retention: p.MessageRetentionPeriod ?? 345_600,
      kmsKey: p.KmsMasterKeyId === undefined ? undefined : resolver.resolve(p.KmsMasterKeyId),
      redrive: redrive && { deadLetterTargetArn: resolver.resolve(redrive.deadLetterTargetArn), maxReceiveCount: redrive.maxReceiveCount },
    });
  }

  // KMS keys: enabled, with their key spec, usage and rotation; every alias names its key.
  expect(keys.length).toBeGreaterThan(0);
  for (const [logicalId, resource] of keys) {
    const p = resource.Properties ?? {};
    const { KeyMetadata } = await kms.send(new DescribeKeyCommand({ KeyId: id(logicalId) }));
    const rotation = p.EnableKeyRotation ? (await kms.send(new GetKeyRotationStatusCommand({ KeyId: id(logicalId) }))).KeyRotationEnabled : false;
    expect({ logicalId, state: KeyMetadata!.KeyState, spec: KeyMetadata!.KeySpec, usage: KeyMetadata!.KeyUsage, rotation }).toEqual({
      logicalId,
      state: 'Enabled',
      spec: p.KeySpec ?? 'SYMMETRIC_DEFAULT',
      usage: p.KeyUsage ?? 'ENCRYPT_DECRYPT',
      rotation: p.EnableKeyRotation === true,
    });
  }
  const aliases = new Map<string, string>();
  for await (const page of paginateListAliases({ client: kms }, {})) for (const alias of page.Aliases ?? []) aliases.set(alias.AliasName!, alias.TargetKeyId!);
  for (const [, resource] of resourcesOfType(template, 'AWS::KMS::Alias')) {
    const p = resource.Properties!;
    // TargetKeyId may name the key by id or ARN; ListAliases answers its id.
    const key = resolver.resolveString(p.TargetKeyId).split('/').pop();
    expect({ alias: p.AliasName, key: aliases.get(p.AliasName as string) }).toEqual({ alias: p.AliasName, key });
  }

  // The REST API: every method of the template, each behind the template's authorizer, which
  // calls the authorizer function with the template's identity source and TTL.
  const [[apiLogicalId]] = resourcesOfType(template, 'AWS::ApiGateway::RestApi') as [[string, CfnResource]];
  const restApiId = id(apiLogicalId);
  const authorizers = (await apiGateway.send(new GetAuthorizersCommand({ restApiId }))).items ?? [];
  const templatedAuthorizers = resourcesOfType(template, 'AWS::ApiGateway::Authorizer');
  expect(authorizers.map((authorizer) => authorizer.id).sort()).toEqual(templatedAuthorizers.map(([logicalId]) => id(logicalId)).sort());
  for (const [logicalId, resource] of templatedAuthorizers) {
    const p = resource.Properties!;
    const deployed = authorizers.find((authorizer) => authorizer.id === id(logicalId))!;
    expect({
      type: deployed.type,
      uri: deployed.authorizerUri,
      identitySource: deployed.identitySource,
      validation: deployed.identityValidationExpression,
      ttl: deployed.authorizerResultTtlInSeconds,
    }).toEqual({
      type: p.Type,
      uri: resolver.resolve(p.AuthorizerUri),
      identitySource: p.IdentitySource,
      validation: p.IdentityValidationExpression,
      ttl: p.AuthorizerResultTtlInSeconds,
    });
  }
  const deployedMethods = new Map<string, { authorizationType?: string; authorizerId?: string }>();
  for await (const page of paginateGetResources({ client: apiGateway }, { restApiId, embed: ['methods'], limit: 500 })) {
    for (const apiResource of page.items ?? []) {
      if (apiResource.path === '/') resolver.setAttribute(apiLogicalId, 'RootResourceId', apiResource.id!);
      for (const [httpMethod, method] of Object.entries(apiResource.resourceMethods ?? {})) deployedMethods.set(`${apiResource.id} ${httpMethod}`, method);
    }
  }
  const templatedMethods = resourcesOfType(template, 'AWS::ApiGateway::Method');
  expect(templatedMethods.length).toBeGreaterThan(0);
  expect(deployedMethods.size).toBe(templatedMethods.length);
  for (const [logicalId, resource] of templatedMethods) {
    const p = resource.Properties!;
    const deployed = deployedMethods.get(`${resolver.resolve(p.ResourceId)} ${p.HttpMethod}`);
    expect({ logicalId, authorizationType: deployed?.authorizationType, authorizerId: deployed?.authorizerId }).toEqual({
      logicalId,
      authorizationType: 'CUSTOM',
      authorizerId: resolver.resolve(p.AuthorizerId),
    });
  }
}
