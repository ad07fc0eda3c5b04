import { templateOf } from '../helpers/cdk-template.ts';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../cdk/app-builder.ts';
import { authorizersOf } from '../../local/api-gateway.ts';
import { type AwsLookups, IamCheck } from '../../local/aws/iam-check.ts';
import type { WireCall } from '../../local/aws/iam-requests.ts';
import { functionPrincipalName, hostAgentPrincipal, localAccessKeyId, registrationFor } from '../../local/aws/iam-principals.ts';
import { Resolver, resourcesOfType, type CfnTemplate } from '../../local/template.ts';

const ACCOUNT = '000000000000';
const dataKey = `arn:aws:kms:us-east-1:${ACCOUNT}:key/data`;
const pairKey = `arn:aws:kms:us-east-1:${ACCOUNT}:key/pair`;
const otherApiKey = `arn:aws:kms:eu-west-1:${ACCOUNT}:key/api-eu`;

/** The emulator's facts, as a fake: keys by id or alias, queue tags by ARN. */
function fakeLookups(tags: Record<string, Record<string, string>> = {}): AwsLookups {
  const keys: Record<string, { arn: string; aliases: string[] }> = {
    'us-east-1|data': { arn: dataKey, aliases: [] },
    [`us-east-1|${dataKey}`]: { arn: dataKey, aliases: [] },
    'us-east-1|alias/pair': { arn: pairKey, aliases: ['alias/pair'] },
    [`eu-west-1|arn:aws:kms:eu-west-1:${ACCOUNT}:alias/api-tokens`]: { arn: otherApiKey, aliases: ['alias/api-tokens'] },
    [`eu-west-1|${otherApiKey}`]: { arn: otherApiKey, aliases: ['alias/api-tokens'] },
  };
  return { kmsKey: async (region, keyId) => keys[`${region}|${keyId}`], queueTags: async (arn) => tags[arn] ?? {} };
}

const call = (service: string, operation: string, body: Record<string, unknown>, region = 'us-east-1'): WireCall => ({
  service,
  operation,
  method: 'POST',
  url: new URL('http://127.0.0.1/'),
  headers: {},
  region,
  accountId: ACCOUNT,
  body,
});

describe('the IAM check of the local run', () => {
  const table = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/Convergence`;
  const fn = {
    accessKeyId: 'AKIAFUNCTION00000001',
    name: 'function/us-east-1/Reader',
    kind: 'function' as const,
    region: 'us-east-1',
    statements: [
      { Effect: 'Allow' as const, Action: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan'], Resource: [table, `${table}/index/*`] },
      { Effect: 'Allow' as const, Action: 'kms:Decrypt', Resource: pairKey, Condition: { StringEquals: { 'kms:EncryptionContext:purpose': 'network-pair' } } },
    ],
  };

  it('lets unknown keys through, counted as unattributed, and a role its own grants', async () => {
    const check = new IamCheck('enforce', fakeLookups());
    check.register({ principals: [fn] });
    expect((await check.authorize('test', call('dynamodb', 'PutItem', { TableName: 'Convergence' }))).refusals).toEqual([]);
    expect((await check.authorize(fn.accessKeyId, call('dynamodb', 'GetItem', { TableName: 'Convergence' }))).refusals).toEqual([]);
    const refused = await check.authorize(fn.accessKeyId, call('dynamodb', 'PutItem', { TableName: 'Convergence' }));
    expect(refused.refusals.map(({ action, resource, decision }) => ({ action, resource, decision }))).toEqual([
      { action: 'dynamodb:PutItem', resource: table, decision: 'implicit-deny' },
    ]);
    const report = check.report();
    expect(report.unattributed).toEqual([{ accessKeyId: 'test', calls: 1 }]);
    expect(report.refused).toHaveLength(1);
    // Query and Scan, and the pair key, were granted and never used.
    expect(report.unusedGrants).toEqual([
      {
        principal: fn.name,
        calls: 2,
        unused: [
          { action: 'dynamodb:Query', resource: `${table}, ${table}/index/*` },
          { action: 'dynamodb:Scan', resource: `${table}, ${table}/index/*` },
          { action: 'kms:Decrypt', resource: pairKey },
        ],
      },
    ]);
  });

  it("asks for the KMS actions a service takes on a resource's customer managed key with the caller's credentials", async () => {
    const check = new IamCheck('enforce', fakeLookups());
    check.register({ principals: [fn], encryptedResources: [{ arn: table, keyId: 'data', region: 'us-east-1' }] });
    const verdict = await check.authorize(fn.accessKeyId, call('dynamodb', 'Query', { TableName: 'Convergence', IndexName: 'gsi1' }));
    expect(verdict.refusals.map(({ action, resource, call: name }) => ({ action, resource, name }))).toEqual([
      { action: 'kms:Decrypt', resource: dataKey, name: `dynamodb Query (dynamodb uses ${table}/index/gsi1's key)` },
    ]);
    check.register({ principals: [{ ...fn, statements: [...fn.statements, { Effect: 'Allow', Action: 'kms:Decrypt', Resource: dataKey }] }] });
    expect((await check.authorize(fn.accessKeyId, call('dynamodb', 'Query', { TableName: 'Convergence', IndexName: 'gsi1' }))).refusals).toEqual([]);
  });

  it('resolves aliases to keys, with kms:ResourceAliases and the encryption context for conditions', async () => {
    const check = new IamCheck('enforce', fakeLookups());
    const authorizer = {
      ...fn,
      accessKeyId: 'AKIAAUTHORIZER000001',
      statements: [
        {
          Effect: 'Allow' as const,
          Action: 'kms:GetPublicKey',
          Resource: `arn:aws:kms:eu-west-1:${ACCOUNT}:key/*`,
          Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/api-tokens' } },
        },
      ],
    };
    check.register({ principals: [fn, authorizer] });
    const alias = `arn:aws:kms:eu-west-1:${ACCOUNT}:alias/api-tokens`;
    expect((await check.authorize(authorizer.accessKeyId, call('kms', 'GetPublicKey', { KeyId: alias }))).refusals).toEqual([]);
    expect(
      (await check.authorize(fn.accessKeyId, call('kms', 'Decrypt', { KeyId: 'alias/pair', EncryptionContext: { purpose: 'network-pair' } }))).refusals,
    ).toEqual([]);
    const wrongContext = await check.authorize(fn.accessKeyId, call('kms', 'Decrypt', { KeyId: 'alias/pair', EncryptionContext: { purpose: 'other' } }));
    expect(wrongContext.refusals[0]).toMatchObject({ action: 'kms:Decrypt', resource: pairKey });
    // A ciphertext that names no key is decided on the key the answer names.
    const deferred = await check.authorize(fn.accessKeyId, call('kms', 'Decrypt', { CiphertextBlob: 'x', EncryptionContext: { purpose: 'network-pair' } }));
    expect(deferred.refusals).toEqual([]);
    expect(await deferred.deferred!({ KeyId: pairKey })).toEqual([]);
    expect(await deferred.deferred!({ KeyId: dataKey })).toMatchObject([{ action: 'kms:Decrypt', resource: dataKey }]);
  });

  it("evaluates a host agent's managed policy with its host id and the queue's tags", async () => {
    const queue = (name: string) => `arn:aws:sqs:us-east-1:${ACCOUNT}:${name}`;
    const check = new IamCheck('enforce', fakeLookups({ [queue('shuffle-1')]: { 'job-hosts': '/h-1/h-2/' } }));
    check.register({
      managedPolicies: [
        {
          region: 'us-east-1',
          logicalId: 'HostAgentPolicyCFAE47C4',
          statements: [
            { Effect: 'Allow', Action: 'sqs:ReceiveMessage', Resource: queue(`host-\${aws:PrincipalTag/stratoplane:host-id}`) },
            {
              Effect: 'Allow',
              Action: 'sqs:SendMessage',
              Resource: queue('shuffle-*'),
              Condition: { StringLike: { 'aws:ResourceTag/job-hosts': `*/\${aws:PrincipalTag/stratoplane:host-id}/*` } },
            },
          ],
        },
      ],
      principals: [hostAgentPrincipal('us-east-1', 'h-1'), hostAgentPrincipal('us-east-1', 'h-3')],
    });
    const url = (name: string) => `http://127.0.0.1:4566/queue/us-east-1/${ACCOUNT}/${name}`;
    const as = (hostId: string) => localAccessKeyId(`host-agent/us-east-1/${hostId}`);
    expect((await check.authorize(as('h-1'), call('sqs', 'ReceiveMessage', { QueueUrl: url('host-h-1') }))).refusals).toEqual([]);
    expect((await check.authorize(as('h-1'), call('sqs', 'ReceiveMessage', { QueueUrl: url('host-h-3') }))).refusals).toHaveLength(1);
    expect((await check.authorize(as('h-1'), call('sqs', 'SendMessageBatch', { QueueUrl: url('shuffle-1') }))).refusals).toEqual([]);
    expect((await check.authorize(as('h-3'), call('sqs', 'SendMessageBatch', { QueueUrl: url('shuffle-1') }))).refusals).toHaveLength(1);
  });

  it('follows shard iterators to the stream they were asked for, however many pollers share one', async () => {
    const check = new IamCheck('enforce', fakeLookups());
    const stream = `${table}/stream/s`;
    const reader = { ...fn, accessKeyId: 'AKIASTREAMREADER0001', statements: [{ Effect: 'Allow' as const, Action: 'dynamodb:GetRecords', Resource: stream }] };
    check.register({ principals: [reader] });
    check.observe(call('dynamodbstreams', 'GetShardIterator', { StreamArn: stream }), { ShardIterator: 'iterator-1' });
    check.observe(call('dynamodbstreams', 'GetRecords', { ShardIterator: 'iterator-1' }), { NextShardIterator: 'iterator-2' });
    for (const iterator of ['iterator-1', 'iterator-1', 'iterator-2'])
      expect((await check.authorize(reader.accessKeyId, call('dynamodbstreams', 'GetRecords', { ShardIterator: iterator }))).refusals).toEqual([]);
    expect((await check.authorize(reader.accessKeyId, call('dynamodbstreams', 'GetRecords', { ShardIterator: 'unknown' }))).refusals).toMatchObject([
      { decision: 'unresolved' },
    ]);
  });

  it('keeps refusals a test asked for apart from findings', async () => {
    const check = new IamCheck('enforce', fakeLookups());
    check.register({ principals: [fn] });
    await check.authorize(fn.accessKeyId, call('dynamodb', 'PutItem', { TableName: 'Convergence' }), { expectRefusal: true });
    await check.authorize(fn.accessKeyId, call('dynamodb', 'PutItem', { TableName: 'Convergence' }), { expectRefusal: true });
    expect(check.report().refused).toMatchObject([{ action: 'dynamodb:PutItem', expected: true, count: 2 }]);
  });
});

describe('the principals a runner registers from the synthesized template', () => {
  let template: CfnTemplate;
  let resolver: Resolver;

  beforeAll(() => {
    const { stacks } = buildApp({ context: { regions: 'us-east-1,eu-west-1', 'aws:cdk:bundling-stacks': [] } });
    const stack = stacks.get('us-east-1')!;
    // With its nested route stacks' functions and roles.
    template = templateOf(stack);
    resolver = new Resolver(template, { region: 'us-east-1', accountId: ACCOUNT, partition: 'aws', stackName: stack.stackName });
    // What provisioning records: the local names of the table and keys.
    for (const [id, resource] of Object.entries(template.Resources)) {
      if (resource.Type === 'AWS::DynamoDB::GlobalTable' || resource.Type === 'AWS::DynamoDB::Table') {
        resolver.setRef(id, id);
        resolver.setAttribute(id, 'Arn', `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/${id}`);
        resolver.setAttribute(id, 'StreamArn', `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/${id}/stream/now`);
      }
      if (resource.Type === 'AWS::KMS::Key') resolver.setAttribute(id, 'Arn', `arn:aws:kms:us-east-1:${ACCOUNT}:key/${id}`);
    }
  }, 120_000); // synthesis takes seconds, more on a busy machine

  it("gives each function its role's statements, and the authorizer only its reads", async () => {
    const functionIds = resourcesOfType(template, 'AWS::Lambda::Function').map(([id]) => id);
    const registration = registrationFor(template, resolver, functionIds);
    expect(new Set(registration.principals!.map((principal) => principal.accessKeyId)).size).toBe(functionIds.length);
    expect(registration.managedPolicies!.map((policy) => policy.logicalId.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'HostAgentPolicy',
      'TokenIssuerPolicy',
    ]);
    const [metadataId] = resourcesOfType(template, 'AWS::DynamoDB::GlobalTable')[0]!;
    const check = new IamCheck('enforce', { kmsKey: async () => undefined, queueTags: async () => ({}) });
    check.register(registration);
    const authorizerKey = localAccessKeyId(functionPrincipalName('us-east-1', authorizersOf(template)[0]!.functionLogicalId));
    expect((await check.authorize(authorizerKey, call('dynamodb', 'GetItem', { TableName: metadataId }))).refusals).toEqual([]);
    expect((await check.authorize(authorizerKey, call('dynamodb', 'PutItem', { TableName: metadataId }))).refusals).toHaveLength(1);
    expect((await check.authorize(authorizerKey, call('dynamodb', 'Query', { TableName: metadataId, IndexName: 'gsi1' }))).refusals).toHaveLength(1);
  });

  it('makes keys LocalStack maps to its default account: AKIA and 20 characters, never 12 digits first', () => {
    for (const name of ['function/us-east-1/A', 'host-agent/eu-west-1/host-1']) {
      const key = localAccessKeyId(name);
      expect(key).toMatch(/^AKIA[A-Z2-7]{16}$/);
      expect(localAccessKeyId(name)).toBe(key);
    }
    expect(localAccessKeyId('a')).not.toBe(localAccessKeyId('b'));
  });
});
