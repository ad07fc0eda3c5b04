import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DescribeTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { GetEventSourceMappingCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalAws } from '../../local/aws/local-aws.ts';
import type { CdkTarget } from '../../local/deploy/cdk-cli.ts';
import { fakedResourceTypes, startDeployAws } from '../../local/deploy/deploy-aws.ts';
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
import { type CfnTemplate, readTemplate, resourcesOfType } from '../../local/template.ts';

/**
 * The two-region app through `npm run deploy:local`'s path: the real cdk CLI synthesizes it for
 * us-east-1 (primary: the global table, with a replica in eu-west-1) and eu-west-1 (which reads
 * its replica's stream ARN with a DescribeTable custom resource), bootstraps both environments and
 * deploys both stacks through CloudFormation into a LocalStack of this file's own, with the
 * project's providers for AWS::DynamoDB::GlobalTable and Custom::AWS
 * (local/aws/localstack-extensions/). Then `cdk destroy` of both.
 *
 * What cdk-deploy.test.ts compares resource by resource for one region (functions, mappings,
 * queues, keys, authorizer) is the same construct code in every region; this file checks what
 * only a second region has: the replica, the replica stack's stream, and data across regions.
 */
const primary = 'us-east-1';
const replica = 'eu-west-1';
const regions = [primary, replica];
const workDir = path.join(projectRoot, '.local-run', `cdk-deploy-two-regions-test-${process.pid}`);
const localStackLog = path.join(workDir, 'localstack.log');

let aws: LocalAws;
let target: CdkTarget;
let assembly: Assembly;
const stacks = new Map<string, AssemblyStack>();
const templates = new Map<string, CfnTemplate>();
let passed = 0;

beforeAll(async () => {
  mkdirSync(workDir, { recursive: true });
  const logFile = path.join(workDir, 'cdk.log');
  [aws, assembly] = await Promise.all([
    startDeployAws({ logFile: localStackLog }),
    synthesize({ region: primary, logFile }, path.join(workDir, 'cdk.out'), [`regions=${regions.join(',')}`]),
  ]);
  target = { endpoint: aws.endpoint, region: primary, logFile };
  expect(assembly.stacks.map((stack) => stack.region).sort()).toEqual([...regions].sort());
  for (const stack of assembly.stacks) {
    stacks.set(stack.region, stack);
    // With its nested route stacks' resources (cdk/constructs/route-stacks.ts), as CloudFormation holds them.
    templates.set(stack.region, readTemplate(stack.templateFile));
  }
  await bootstrap(target, assembly);
}, 300_000);

afterAll(async () => {
  await aws?.stop();
  if (passed === 2) rmSync(workDir, { recursive: true, force: true });
  else console.error(`cdk-deploy-two-regions: logs kept in ${path.relative(projectRoot, workDir)}/`);
});

const dynamodb = (region: string) => new DynamoDBClient(clientConfig(target, region));

describe('cdk deploy of two regions through CloudFormation into LocalStack', () => {
  it('creates both stacks; the global table has its replica in the second region, whose stack streams it; data written in one region is read in the other', async () => {
    const result = await deploy(target, assembly);
    const templated = assembly.stacks.reduce((sum, stack) => sum + stack.resourceCount, 0);
    expect(result).toMatchObject({ stacks: 2, resources: templated });
    expect(fakedResourceTypes(localStackLog)).toEqual([]);
    for (const region of regions) {
      const stack = stacks.get(region)!;
      const { Stacks } = await cloudFormationClient(target, region).send(new DescribeStacksCommand({ StackName: stack.stackName }));
      expect({ region, status: Stacks?.[0]?.StackStatus }).toEqual({ region, status: 'CREATE_COMPLETE' });
      // Every resource of the stack and its nested stacks (CDK's metadata resource, one per stack, aside).
      const held = (await stackResourcesWithNested(target, stack)).filter((resource) => resource.ResourceType !== 'AWS::CDK::Metadata');
      const templated = Object.entries(templates.get(region)!.Resources).filter(([, resource]) => resource.Type !== 'AWS::CDK::Metadata');
      expect({ region, held: held.map((resource) => resource.LogicalResourceId).sort() }).toEqual({
        region,
        held: templated.map(([logicalId]) => logicalId).sort(),
      });
    }

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
  }, 240_000);

  it('destroys both stacks, the replica region first', async () => {
    await destroy(target, assembly);
    for (const region of regions) {
      const stackName = stacks.get(region)!.stackName;
      const found = await cloudFormationClient(target, region)
        .send(new DescribeStacksCommand({ StackName: stackName }))
        .then(({ Stacks }) => Stacks?.[0]?.StackStatus)
        .catch((error: Error) => (/does not exist/.test(error.message) ? 'gone' : Promise.reject(error)));
      expect({ region, found }).toEqual({ region, found: expect.stringMatching(/^(gone|DELETE_COMPLETE)$/) });
    }
    passed++;
  }, 180_000);
});
