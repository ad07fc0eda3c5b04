import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { App, NestedStack, Stack, type CfnElement } from 'aws-cdk-lib';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { RestApi } from 'aws-cdk-lib/aws-apigateway';
import { z } from 'zod';
import { Construct } from 'constructs';
import { buildApp } from '../../cdk/app-builder.ts';
import { flat, flatLogicalId } from '../../cdk/flat-logical-ids.ts';
import { ROUTE_STACK_BUDGET, ROUTE_STACKS, RouteStack, routeStackOf } from '../../cdk/constructs/route-stacks.ts';
import { operations } from '#events/operations.ts';
import { assertionsTemplateOf } from '../helpers/cdk-template.ts';

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };

describe('ControlPlaneStack', () => {
  let template: Template;
  let resources: Record<string, { Type: string; Properties: any; Metadata?: any }>;

  beforeAll(() => {
    // Bundling is skipped: these tests look at the template, not the code.
    const { stacks } = buildApp({ context: { regions: 'us-east-1', 'aws:cdk:bundling-stacks': [], 'aws:cdk:enable-path-metadata': true } });
    // With the resources of its nested route stacks (cdk/constructs/route-stacks.ts).
    template = assertionsTemplateOf(stacks.get('us-east-1')!);
    resources = template.toJSON().Resources;
  });

  /** The IAM statements attached to a function's role, by function path fragment. */
  function statementsOf(pathFragment: string): Statement[] {
    const [, fn] = Object.entries(resources).find(([, r]) => r.Type === 'AWS::Lambda::Function' && r.Metadata?.['aws:cdk:path']?.includes(pathFragment))!;
    const roleId = fn.Properties.Role['Fn::GetAtt'][0];
    return Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((role: { Ref: string }) => role.Ref === roleId))
      .flatMap((r) => r.Properties.PolicyDocument.Statement as Statement[]);
  }
  const actionsOf = (pathFragment: string) => statementsOf(pathFragment).flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
  const writeActions = /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem)$/;

  it('encrypts the metadata table with its customer managed key, with streams and point-in-time recovery', () => {
    template.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      SSESpecification: { SSEEnabled: true, SSEType: 'KMS' },
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
      Replicas: [
        Match.objectLike({
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
          SSESpecification: { KMSMasterKeyId: Match.anyValue() },
        }),
      ],
    });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  it('encrypts every queue, enforces TLS on each, and gives every consumed queue a dead-letter queue', () => {
    const queues = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::SQS::Queue');
    expect(queues.length).toBeGreaterThanOrEqual(4);
    for (const [, queue] of queues) expect(queue.Properties.KmsMasterKeyId ?? queue.Properties.SqsManagedSseEnabled).toBeTruthy();
    for (const [id] of queues) {
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: id }],
        PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
      });
    }
    const fanOut = queues.find(([id]) => id.startsWith('FanOutQueue'))![1];
    expect(fanOut.Properties.RedrivePolicy).toMatchObject({ maxReceiveCount: 10 });
  });

  it('names every dead-letter queue under the region prefix, and lets each queue consumer settle its own failures into its DLQ', () => {
    const queues = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::SQS::Queue');
    const deadLetterIds = queues.filter(([id]) => /Dlq/.test(id)).map(([id]) => id);
    expect(deadLetterIds.length).toBe(6);
    for (const id of deadLetterIds) expect(resources[id]!.Properties.QueueName).toMatch(/^Stratoplane-us-east-1-dead-/);
    // Only dead-letter queues carry the prefix: the operators' tool lists exactly these.
    expect(queues.filter(([id, queue]) => !deadLetterIds.includes(id) && String(queue.Properties.QueueName ?? '').includes('-dead-'))).toEqual([]);

    const sqsMappings = Object.values(resources).filter(
      (r) => r.Type === 'AWS::Lambda::EventSourceMapping' && JSON.stringify(r.Properties.EventSourceArn).includes('Queue'),
    );
    expect(sqsMappings).toHaveLength(4);
    for (const mapping of sqsMappings) {
      const queueId = mapping.Properties.EventSourceArn['Fn::GetAtt'][0] as string;
      const dlqId = resources[queueId]!.Properties.RedrivePolicy.deadLetterTargetArn['Fn::GetAtt'][0] as string;
      const fn = resources[mapping.Properties.FunctionName.Ref]!;
      const env = fn.Properties.Environment.Variables;
      expect(env).toMatchObject({ SOURCE_QUEUE_URL: { Ref: queueId }, DEAD_LETTER_QUEUE_URL: { Ref: dlqId } });
      // SQS's own redrive comes only after the handler's attempts.
      expect(resources[queueId]!.Properties.RedrivePolicy.maxReceiveCount).toBe(2 * Number(env.MAX_ATTEMPTS));
      const roleId = fn.Properties.Role['Fn::GetAtt'][0];
      const sendsToDlq = Object.values(resources).some(
        (r) =>
          r.Type === 'AWS::IAM::Policy' &&
          r.Properties.Roles.some((role: { Ref: string }) => role.Ref === roleId) &&
          (r.Properties.PolicyDocument.Statement as Statement[]).some(
            (statement) => [statement.Action].flat().includes('sqs:SendMessage') && JSON.stringify(statement.Resource).includes(dlqId),
          ),
      );
      expect(sendsToDlq).toBe(true);
    }
  });

  it('reports partial batch failures on every event source mapping, and bounds stream retries into a DLQ', () => {
    template.resourceCountIs('AWS::Lambda::EventSourceMapping', 6);
    template.allResourcesProperties('AWS::Lambda::EventSourceMapping', { FunctionResponseTypes: ['ReportBatchItemFailures'] });
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Metadata'), 'StreamArn'] },
      BisectBatchOnFunctionError: true,
      MaximumRetryAttempts: 10,
      DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('^StreamFailureDlq'), 'Arn'] } } },
    });
  });

  it('reserves concurrency for every stream and queue consumer, and lets queue pollers scale no further', () => {
    const mappings = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(6);
    let reserved = 0;
    for (const mapping of mappings) {
      const fn = resources[mapping.Properties.FunctionName.Ref]!;
      const concurrency = fn.Properties.ReservedConcurrentExecutions;
      expect(concurrency, `${mapping.Properties.FunctionName.Ref} has no reserved concurrency`).toBeGreaterThanOrEqual(5);
      reserved += concurrency;
      // SQS sources: at most as many concurrent batches as the function may run (streams: one per shard).
      if (!JSON.stringify(mapping.Properties.EventSourceArn).includes('StreamArn'))
        expect(mapping.Properties.ScalingConfig).toEqual({ MaximumConcurrency: concurrency });
    }
    // An account's default 1,000 keeps 100 unreserved: the consumers take a small share of the rest.
    expect(reserved).toBeLessThanOrEqual(200);
  });

  it('runs every function on Node 22, arm64, traced', () => {
    template.allResourcesProperties('AWS::Lambda::Function', { Runtime: 'nodejs22.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' } });
  });

  it('grants no wildcard actions', () => {
    for (const resource of Object.values(resources).filter((r) => r.Type === 'AWS::IAM::Policy')) {
      for (const statement of resource.Properties.PolicyDocument.Statement as Statement[]) {
        const actions = Array.isArray(statement.Action) ? statement.Action : [statement.Action];
        for (const action of actions) expect(action).not.toMatch(/(^\*$|:\*$)/);
      }
    }
  });

  it('gives read-only routes no write access to the table', () => {
    for (const route of ['GetHosts', 'GetNetworks', 'GetVms', 'GetHostsHostIdForwardingTable', 'GetVmsVmId']) {
      const actions = actionsOf(`/${route}/`);
      expect(actions).toContain('dynamodb:Query');
      expect(actions.filter((action) => writeActions.test(action))).toEqual([]);
    }
  });

  it('lets only host registration and shuffle job creation create queues, each only its own kind', () => {
    const creators = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .filter((r) => (r.Properties.PolicyDocument.Statement as Statement[]).some((s) => [s.Action].flat().includes('sqs:CreateQueue')));
    expect(creators).toHaveLength(2);
    const hosts = statementsOf('/PostHosts/').find((s) => [s.Action].flat().includes('sqs:CreateQueue'))!;
    expect(JSON.stringify(hosts.Resource)).toContain(':Stratoplane-us-east-1-host-*');
    const shuffles = statementsOf('/PostShuffleJobs/').find((s) => [s.Action].flat().includes('sqs:CreateQueue'))!;
    expect(JSON.stringify(shuffles.Resource)).toContain(':Stratoplane-us-east-1-shuffle-*');
    // Only the job's owner deletes its queues.
    expect(actionsOf('/DeleteShuffleJobsJobId/')).toContain('sqs:DeleteQueue');
  });

  it('lets the fan-out function read the table and send only to host queues and its dead-letter queue', () => {
    const statements = statementsOf('/FanOut/');
    expect(statements.flatMap((s) => [s.Action].flat()).filter((action) => writeActions.test(action))).toEqual([]);
    const send = statements.filter((s) => [s.Action].flat().includes('sqs:SendMessage'));
    expect(send.map((statement) => JSON.stringify(statement.Resource))).toEqual([
      expect.stringContaining(':Stratoplane-us-east-1-host-*'),
      expect.stringMatching(/FanOutDlq/),
    ]);
  });

  it('gives the stream function no table writes and no host queue access', () => {
    const statements = statementsOf('/NetworkChanges/');
    const actions = statements.flatMap((s) => [s.Action].flat());
    expect(actions.filter((action) => writeActions.test(action))).toEqual([]);
    expect(JSON.stringify(statements)).not.toContain('Stratoplane-host-');
    expect(actions).toContain('sqs:SendMessage');
  });

  /** `function path → ['kms:Action on KeyLogicalId', ...]` for every function with KMS permissions. */
  function kmsPermissionsByFunction(): Record<string, string[]> {
    const keyIds = Object.entries(resources)
      .filter(([, r]) => r.Type === 'AWS::KMS::Key')
      .map(([id]) => id);
    const byFunction: Record<string, string[]> = {};
    for (const [, fn] of Object.entries(resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
      const path = (fn.Metadata['aws:cdk:path'] as string).replace(/^Stratoplane-us-east-1\//, '').replace(/\/Resource$/, '');
      const permissions = statementsOf(fn.Metadata['aws:cdk:path']).flatMap((statement) =>
        [statement.Action]
          .flat()
          .filter((action) => action.startsWith('kms:'))
          .flatMap((action) =>
            keyIds.filter((key) => JSON.stringify(statement.Resource).includes(`"${key}"`)).map((key) => `${action} on ${key.replace(/[0-9A-F]{8}$/, '')}`),
          ),
      );
      if (permissions.length > 0) byFunction[path] = permissions.sort();
    }
    return byFunction;
  }

  it('gives each function only the KMS actions it uses on signing keys, and signing keys to nobody else', () => {
    const signing = Object.fromEntries(
      Object.entries(kmsPermissionsByFunction())
        .map(([fn, permissions]) => [fn, permissions.filter((permission) => !permission.endsWith(' on DataKey'))] as const)
        .filter(([, permissions]) => permissions.length > 0),
    );
    expect(signing).toEqual({
      'Api/Authorizer': ['kms:GetPublicKey on ApiTokenKey'],
      // Routes are in the nested stack of their bounded context (cdk/constructs/route-stacks.ts).
      'Api/Identity/PutHostsHostIdVmsVmIdHostKeys': ['kms:Sign on HostKeyAttestationKey'],
      'Api/Identity/PostHostsHostIdServiceAccountCredentials': ['kms:Sign on HostCredentialKey'],
      'Api/Compute/PostVms': ['kms:GenerateDataKeyWithoutPlaintext on VmPairKey'],
      // A migration gives the VM a new pair secret: a cold move at once, a live one at its cut-over.
      'Api/Compute/PostVmsVmIdMigrate': ['kms:GenerateDataKeyWithoutPlaintext on VmPairKey'],
      'Api/Compute/PutHostsHostIdVmsVmIdMigration': ['kms:GenerateDataKeyWithoutPlaintext on VmPairKey'],
      // So do a restart elsewhere after its host went down, and a drain.
      'HostSweep/SweepHosts': ['kms:GenerateDataKeyWithoutPlaintext on VmPairKey'],
      'Api/Compute/PostHostsHostIdDrain': ['kms:GenerateDataKeyWithoutPlaintext on VmPairKey'],
      'Api/Identity/PostVmsVmIdConnections': ['kms:Decrypt on VmPairKey'],
      ...Object.fromEntries(
        [
          'Networks/GetNetworks',
          'Compute/GetVms',
          'Identity/GetServiceAccounts',
          'Projects/GetProjects',
          'ImagesAndDisks/GetImages',
          'ImagesAndDisks/GetDisks',
        ].map((route) => [`Api/${route}`, ['kms:GenerateMac on ListCursorKey']]),
      ),
    });
  });

  it('answers unknown routes and methods with a 404 and a JSON message, not 403 Missing Authentication Token', () => {
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'MISSING_AUTHENTICATION_TOKEN',
      StatusCode: '404',
      ResponseTemplates: { 'application/json': JSON.stringify({ message: 'no route for this method and path; GET /openapi.json lists them' }) },
    });
  });

  it('signs list cursors with an HMAC key the list routes only derive their signing key from', () => {
    template.hasResourceProperties('AWS::KMS::Key', { KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' });
    template.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/stratoplane/list-cursors' });
    const listNetworks = Object.values(resources).find((r) => r.Type === 'AWS::Lambda::Function' && r.Metadata?.['aws:cdk:path']?.includes('/GetNetworks/'))!;
    expect(listNetworks.Properties.Environment.Variables.LIST_CURSOR_KEY_ARN).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^ListCursorKey/), 'Arn'] });
  });

  it('uses the data key only to encrypt and decrypt data at rest and in queues', () => {
    const dataKeyActions = new Set(
      Object.values(kmsPermissionsByFunction())
        .flat()
        .filter((p) => p.endsWith(' on DataKey'))
        .map((p) => p.split(' ')[0]),
    );
    expect(dataKeyActions).toContain('kms:Decrypt');
    for (const action of dataKeyActions) expect(action).toMatch(/^kms:(Decrypt|Encrypt|ReEncrypt\*|GenerateDataKey\*|DescribeKey)$/);
  });

  it('signs API tokens with an asymmetric P-256 key that operators may only sign with', () => {
    template.hasResourceProperties('AWS::KMS::Key', { KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' });
    template.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/stratoplane/api-tokens' });
    const issuer = Object.entries(resources).find(([id, r]) => r.Type === 'AWS::IAM::ManagedPolicy' && id.startsWith('TokenIssuerPolicy'))![1];
    expect(issuer.Properties.PolicyDocument.Statement).toEqual([
      { Action: ['kms:Sign', 'kms:DescribeKey'], Effect: 'Allow', Resource: { 'Fn::GetAtt': [expect.stringMatching(/^ApiTokenKey/), 'Arn'] } },
    ]);
  });

  it("validates each request's path parameters and JSON body in API Gateway, against the operation's own schema, before any function runs", () => {
    const [[validatorId]] = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::ApiGateway::RequestValidator') as [[string, unknown]];
    template.hasResourceProperties('AWS::ApiGateway::RequestValidator', { ValidateRequestBody: true, ValidateRequestParameters: true });
    const models = new Map(
      Object.entries(resources)
        .filter(([, r]) => r.Type === 'AWS::ApiGateway::Model')
        .map(([id, r]) => [id, r.Properties]),
    );
    const methods = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGateway::Method');
    for (const method of methods) expect(method.Properties.RequestValidatorId).toEqual({ Ref: validatorId });
    const createVm = methods.find((m) => m.Properties.HttpMethod === 'POST' && JSON.stringify(m.Properties.Integration).includes('"PostVms'))!;
    const createVmModel = models.get(createVm.Properties.RequestModels['application/json'].Ref)!;
    expect(createVmModel).toMatchObject({ ContentType: 'application/json', Name: 'createVmBody' });
    expect(createVmModel.Schema).toMatchObject({
      $schema: 'http://json-schema.org/draft-04/schema#',
      type: 'object',
      required: expect.arrayContaining(['name']),
    });
    const migrate = methods.find((m) => m.Metadata?.['aws:cdk:path']?.includes('/migrate/POST/'))!;
    expect(migrate.Properties.RequestParameters).toEqual({ 'method.request.path.vmId': true });
    // One model per operation with a body, and what API Gateway refuses is a 400 saying why.
    expect(models.size).toBe(methods.filter((m) => m.Properties.RequestModels).length);
    for (const type of ['BAD_REQUEST_BODY', 'BAD_REQUEST_PARAMETERS'])
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', { ResponseType: type, StatusCode: '400' });
  });

  it('puts a bearer-token authorizer with result caching on every method, cached a minute so revocations take effect within one', () => {
    template.hasResourceProperties('AWS::ApiGateway::Authorizer', {
      Type: 'TOKEN',
      IdentitySource: 'method.request.header.Authorization',
      AuthorizerResultTtlInSeconds: 60,
    });
    // The authorizer reads revocations by key, and nothing else of the table.
    expect(actionsOf('/Api/Authorizer/').filter((action) => action.startsWith('dynamodb:'))).toEqual(['dynamodb:GetItem']);
    const methods = Object.values(resources).filter((r) => r.Type === 'AWS::ApiGateway::Method');
    expect(methods.length).toBeGreaterThan(0);
    for (const method of methods)
      expect(method.Properties).toMatchObject({ AuthorizationType: 'CUSTOM', AuthorizerId: { Ref: expect.stringMatching(/^ApiBearerTokens/) } });
  });

  it('ties every use of the pair key to the network-pair encryption context, and lets hosts only decrypt with it', () => {
    const policies = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy');
    const pairKeyStatements = policies
      .flatMap(([, r]) => r.Properties.PolicyDocument.Statement as (Statement & { Condition?: unknown })[])
      .filter((s) => JSON.stringify(s.Resource).includes('VmPairKey'));
    // Create, migrate and a live migration's cut-over generate (a migration rotates the secret), connections and hosts decrypt.
    expect(pairKeyStatements.length).toBe(7);
    for (const statement of pairKeyStatements) expect(statement.Condition).toEqual({ StringEquals: { 'kms:EncryptionContext:purpose': 'network-pair' } });
    const hostPolicy = policies.find(([id]) => id.startsWith('HostAgentPolicy'))![1];
    const kmsActions = (hostPolicy.Properties.PolicyDocument.Statement as Statement[]).flatMap((s) => [s.Action].flat()).filter((a) => a.startsWith('kms:'));
    expect(kmsActions).toEqual(['kms:Decrypt']);
  });

  it('keeps key policies to the account: nobody outside it, and no grants by key policy to functions', () => {
    for (const [, key] of Object.entries(resources).filter(([, r]) => r.Type === 'AWS::KMS::Key')) {
      for (const statement of key.Properties.KeyPolicy.Statement) {
        expect(JSON.stringify(statement.Principal)).toMatch(/:root"/);
      }
    }
  });

  it('orders graph messages per node on a FIFO queue with a FIFO dead-letter queue', () => {
    const queues = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::SQS::Queue');
    const graph = queues.find(([id]) => id.startsWith('GraphQueue'))![1];
    const dlq = queues.find(([id]) => id.startsWith('GraphDlq'))![1];
    expect(graph.Properties).toMatchObject({ FifoQueue: true, RedrivePolicy: { maxReceiveCount: 10 } });
    expect(dlq.Properties.FifoQueue).toBe(true);
    expect(actionsOf('/ResourceGraph/').filter((action) => action.startsWith('kms:') && !/Decrypt|Encrypt|GenerateDataKey|DescribeKey/.test(action))).toEqual(
      [],
    );
  });

  it('keeps image content in a private, KMS-encrypted bucket that only takes TLS and aborts abandoned uploads', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: 'aws:kms' }) })],
      },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LifecycleConfiguration: { Rules: [Match.objectLike({ AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } })] },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    // Only the verifier, the copier and the hosts' VM configurations (presigned image URLs for hosts) read image content;
    // uploads are presigned by the API with put rights on images/*.
    const readers = Object.values(resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .filter((r) => (r.Properties.PolicyDocument.Statement as Statement[]).some((s) => [s.Action].flat().some((a) => a.startsWith('s3:GetObject'))));
    expect(readers).toHaveLength(3);
    expect(actionsOf('/CopyImages/')).toContain('s3:GetObject*');
    expect(actionsOf('/GetHostsHostIdVmConfigs/')).toContain('s3:GetObject*');
    // The verifier only streams objects under images/, and lists nothing.
    const verifierReads = statementsOf('/VerifyImages/').filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:')));
    expect(verifierReads).toEqual([
      expect.objectContaining({ Action: 's3:GetObject', Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Images2D38C313', 'Arn'] }, '/images/*']] } }),
    ]);
    // Its server access logs go to a bucket of their own.
    template.hasResourceProperties('AWS::S3::Bucket', {
      LoggingConfiguration: { DestinationBucketName: { Ref: Match.stringLikeRegexp('^ImagesAccessLogs') }, LogFilePrefix: 'images-bucket/' },
    });
  });
});

describe('ControlPlaneStack in several regions', () => {
  const { stacks } = buildApp({ context: { regions: 'us-east-1,eu-west-1', 'aws:cdk:bundling-stacks': [] } });
  const primary = Template.fromStack(stacks.get('us-east-1')!);
  const replica = Template.fromStack(stacks.get('eu-west-1')!);

  it("keeps every stack, each region's and each of its nested route stacks, under 300 of CloudFormation's 500 resources", () => {
    for (const stack of stacks.values()) {
      const nested = stack.node.findAll().filter((construct): construct is NestedStack => NestedStack.isNestedStack(construct));
      expect(nested.map((routeStack) => routeStack.node.id).sort()).toEqual(Object.keys(ROUTE_STACKS).sort());
      for (const each of [stack, ...nested]) {
        const count = Object.keys(Template.fromStack(each).toJSON().Resources).length;
        // What docs/deployment.md#room-to-grow states, and the budget a route stack's synth enforces.
        expect(count, each.node.path).toBeLessThan(300);
        if (each !== stack) expect(count, each.node.path).toBeLessThanOrEqual(ROUTE_STACK_BUDGET);
      }
    }
  });

  it('keeps the logical IDs of stateful resources and event source mappings, whatever construct holds them (a changed ID replaces the resource)', () => {
    const stateful = [
      'AWS::DynamoDB::GlobalTable',
      'AWS::DynamoDB::Table',
      'AWS::KMS::Key',
      'AWS::KMS::Alias',
      'AWS::S3::Bucket',
      'AWS::SQS::Queue',
      'AWS::Logs::LogGroup',
      'AWS::Lambda::EventSourceMapping',
      'Custom::AWS',
    ];
    const idsOf = (template: Template) =>
      Object.entries(template.toJSON().Resources as Record<string, { Type: string }>)
        .filter(([, resource]) => stateful.includes(resource.Type))
        .map(([id]) => id)
        .sort();
    // The IDs the stack has had since before its concerns became constructs (cdk/flat-logical-ids.ts).
    expect(idsOf(primary)).toEqual(
      [
        'ApiAccessLogs50B185DB',
        'ApiAuthorizerLogsC726F6FF',
        'ApiFunctionLogs4B382957',
        'ApiTokenKey370501EC',
        'ApiTokenKeyAlias63E3EA7D',
        'Convergence7BEE16EC',
        'CopyImagesLogs7FFDE598',
        'CopyImagesSqsEventSourceStratoplaneuseast1ImageCopyQueue4A3304B61D2EFDC9',
        'DataKey17AFBB84',
        'FanOutDlqE177CDC2',
        'FanOutLogs6368F6BF',
        'FanOutQueueBBEEB132',
        'FanOutSqsEventSourceStratoplaneuseast1FanOutQueueBDC9FDDE503889B6',
        'GraphDlq712C23D1',
        'GraphQueue9C178E05',
        'HostCredentialKeyAlias80771575',
        'HostCredentialKeyEA84B54A',
        'HostDlq850E4E44',
        'HostKeyAttestationKey7CA87B3A',
        'HostKeyAttestationKeyAlias08951290',
        'ImageCopyDlq6A7EF7E8',
        'ImageCopyJobsDynamoDBEventSourceStratoplaneuseast1MetadataC64730F6ECC85384',
        'ImageCopyJobsLogs6AEE896F',
        'ImageCopyQueueD18CD10E',
        'ImageVerifyDlqD3AD9DB5',
        'ImageVerifyQueueF548BCBD',
        'Images2D38C313',
        // New with the images bucket's access logs.
        'ImagesAccessLogs91649A46',
        'ListCursorKeyAliasD8F70C4E',
        'ListCursorKeyDB4EF480',
        // New with hosts' heartbeats, and the sweep that restarts a down host's VMs elsewhere and drives drains.
        'LivenessD330D602',
        'HostSweepSweepHostsLogs18A1AED9',
        'MetadataBDB8F4DB',
        'NetworkChangesDynamoDBEventSourceStratoplaneuseast1MetadataC64730F65CE776B1',
        'NetworkChangesLogs0DF81BC4',
        'ResourceGraphLogsD5F0534C',
        'ResourceGraphSqsEventSourceStratoplaneuseast1GraphQueue21813F6BC6546172',
        'StreamFailureDlq55B389CD',
        'VerifyImagesLogs9C138446',
        'VerifyImagesSqsEventSourceStratoplaneuseast1ImageVerifyQueue3E3D1F9843A38340',
        'VmPairKey02F9EECD',
        'VmPairKeyAlias89941FFB',
      ].sort(),
    );
    expect(idsOf(replica)).toEqual(
      [
        'ApiAccessLogs50B185DB',
        'ApiAuthorizerLogsC726F6FF',
        'ApiFunctionLogs4B382957',
        'ApiTokenKey370501EC',
        'ApiTokenKeyAlias63E3EA7D',
        'Convergence7BEE16EC',
        'CopyImagesLogs7FFDE598',
        'CopyImagesSqsEventSourceStratoplaneeuwest1ImageCopyQueue29E02EC55EB11827',
        'DataKey17AFBB84',
        'FanOutDlqE177CDC2',
        'FanOutLogs6368F6BF',
        'FanOutQueueBBEEB132',
        'FanOutSqsEventSourceStratoplaneeuwest1FanOutQueueC821AB2F9FB7563D',
        'GraphDlq712C23D1',
        'GraphQueue9C178E05',
        'HostCredentialKeyAlias80771575',
        'HostCredentialKeyEA84B54A',
        'HostDlq850E4E44',
        'HostKeyAttestationKey7CA87B3A',
        'HostKeyAttestationKeyAlias08951290',
        'ImageCopyDlq6A7EF7E8',
        'ImageCopyJobsDynamoDBEventSourceStratoplaneeuwest1MetadataDD59F4821D58E11D',
        'ImageCopyJobsLogs6AEE896F',
        'ImageCopyQueueD18CD10E',
        'ImageVerifyDlqD3AD9DB5',
        'ImageVerifyQueueF548BCBD',
        'Images2D38C313',
        'ImagesAccessLogs91649A46',
        'ListCursorKeyAliasD8F70C4E',
        'ListCursorKeyDB4EF480',
        // New with hosts' heartbeats, and the sweep that restarts a down host's VMs elsewhere and drives drains.
        'LivenessD330D602',
        'HostSweepSweepHostsLogs18A1AED9',
        'MetadataReplicaStream65F604BF',
        'NetworkChangesDynamoDBEventSourceStratoplaneeuwest1MetadataDD59F4822DB0AC9E',
        'NetworkChangesLogs0DF81BC4',
        'ResourceGraphLogsD5F0534C',
        'ResourceGraphSqsEventSourceStratoplaneeuwest1GraphQueue829DEF736BAF51D6',
        'StreamFailureDlq55B389CD',
        'VerifyImagesLogs9C138446',
        'VerifyImagesSqsEventSourceStratoplaneeuwest1ImageVerifyQueueA77B166D92D2D493',
        'VmPairKey02F9EECD',
        'VmPairKeyAlias89941FFB',
      ].sort(),
    );
  });

  it('defines the global table once, in the first region, with a replica in the other', () => {
    primary.hasResourceProperties('AWS::DynamoDB::GlobalTable', {
      TableName: 'Stratoplane-Metadata',
      Replicas: Match.arrayWith([Match.objectLike({ Region: 'eu-west-1' }), Match.objectLike({ Region: 'us-east-1' })]),
      StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
    });
    replica.resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
    expect(stacks.get('eu-west-1')!.dependencies).toContain(stacks.get('us-east-1')!);
  });

  it("reads its replica's stream in the other region, found by a DescribeTable call at deploy time", () => {
    const [describe] = Object.values(replica.findResources('Custom::AWS'));
    expect(JSON.stringify(describe!.Properties.Create)).toContain(
      '\\"action\\":\\"DescribeTable\\",\\"parameters\\":{\\"TableName\\":\\"Stratoplane-Metadata\\"}',
    );
    const streamMappings = Object.values(replica.findResources('AWS::Lambda::EventSourceMapping')).filter((mapping) =>
      JSON.stringify(mapping.Properties.EventSourceArn).includes('Table.LatestStreamArn'),
    );
    expect(streamMappings).toHaveLength(2);
  });

  it("trusts the other regions' API token keys by alias, and lets the copier read their image buckets", () => {
    const authorizer = Object.values(replica.findResources('AWS::Lambda::Function')).find((fn) =>
      JSON.stringify(fn.Properties.Environment ?? {}).includes('API_TOKEN_KEY_ARNS'),
    )!;
    expect(JSON.stringify(authorizer.Properties.Environment.Variables.API_TOKEN_KEY_ARNS)).toContain(':kms:us-east-1:');
    expect(JSON.stringify(authorizer.Properties.Environment.Variables.API_TOKEN_KEY_ARNS)).toContain(':alias/stratoplane/api-tokens');
    replica.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: ['s3:GetObject', 's3:GetObjectAttributes'], Resource: { 'Fn::Join': ['', Match.arrayWith(['-us-east-1/images/*'])] } }),
        ]),
      },
    });
    replica.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Action: ['kms:GetPublicKey', 'kms:DescribeKey'],
            Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/stratoplane/api-tokens' } },
          }),
        ]),
      },
    });
  });
});

describe('Stateful resources and physical names', () => {
  type Resources = Record<string, { Type: string; Properties: any; DeletionPolicy?: string; UpdateReplacePolicy?: string }>;
  const synth = (context: Record<string, unknown>) => {
    const { stacks } = buildApp({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
    return [...stacks.values()].map((stack) => Template.fromStack(stack).toJSON().Resources as Resources);
  };
  const [stratoplane] = synth({ regions: 'us-east-1' });
  const [staging, stagingReplica] = synth({ regions: 'us-east-1,eu-west-1', deployment: 'staging' });
  /** Physical names a resource is given in the template, by logical ID (the properties that fix one). */
  const physicalNames = (resources: Resources) =>
    Object.values(resources)
      .flatMap((r) => [r.Properties?.TableName, r.Properties?.BucketName, r.Properties?.AliasName, r.Properties?.QueueName])
      .filter((name): name is string => typeof name === 'string');

  it('keeps tables, buckets, keys, aliases and access logs when the stack is deleted, and deletes them with a first deploy that rolls back', () => {
    for (const resources of [stratoplane!, staging!, stagingReplica!]) {
      const kept = Object.entries(resources).filter(([, r]) =>
        ['AWS::DynamoDB::GlobalTable', 'AWS::S3::Bucket', 'AWS::KMS::Key', 'AWS::KMS::Alias'].includes(r.Type),
      );
      expect(kept.length).toBeGreaterThanOrEqual(resources === stagingReplica ? 13 : 14);
      for (const [id, r] of kept)
        expect({ id, DeletionPolicy: r.DeletionPolicy, UpdateReplacePolicy: r.UpdateReplacePolicy }).toEqual({
          id,
          DeletionPolicy: 'RetainExceptOnCreate',
          UpdateReplacePolicy: 'Retain',
        });
      const accessLogs = Object.entries(resources).find(([id]) => id.startsWith('ApiAccessLogs'))![1];
      expect(accessLogs.DeletionPolicy).toBe('RetainExceptOnCreate');
    }
    // DynamoDB's deletion protection would refuse the rollback's delete.
    expect(JSON.stringify(stratoplane)).not.toContain('DeletionProtectionEnabled');
  });

  it("derives every fixed physical name from the deployment's name, so two deployments share an account", () => {
    expect(physicalNames(stratoplane!)).toEqual(
      expect.arrayContaining([
        'Stratoplane-Metadata',
        'alias/stratoplane/api-tokens',
        'Stratoplane-us-east-1-graph.fifo',
        'Stratoplane-us-east-1-dead-fan-out',
      ]),
    );
    expect(physicalNames(staging!)).toEqual(
      expect.arrayContaining(['staging-Metadata', 'alias/staging/api-tokens', 'staging-us-east-1-graph.fifo', 'staging-us-east-1-dead-fan-out']),
    );
    const named = (resources: Resources) => new Set(physicalNames(resources));
    expect([...named(staging!)].filter((name) => named(stratoplane!).has(name))).toEqual([]);
    for (const name of [...physicalNames(staging!), ...physicalNames(stagingReplica!)]) expect(name).toMatch(/staging/);
    const bucket = Object.values(staging!).find((r) => r.Type === 'AWS::S3::Bucket' && r.Properties.BucketName)!;
    expect(bucket.Properties.BucketName).toEqual({ 'Fn::Join': ['', ['staging-images-', { Ref: 'AWS::AccountId' }, '-us-east-1']] });
    // The other region's names, which its stack cannot reference, are the same derivation.
    expect(JSON.stringify(stagingReplica)).toContain('\\"TableName\\":\\"staging-Metadata\\"');
    expect(JSON.stringify(stagingReplica)).toContain('staging-images-');
    expect(JSON.stringify(stagingReplica)).toContain(':alias/staging/api-tokens');
    expect(JSON.stringify(staging)).toContain('staging-eu-west-1-graph.fifo');
    expect(() => synth({ regions: 'us-east-1', deployment: 'no_underscores' })).toThrow(/deployment "no_underscores"/);
  });
});

describe('flat logical IDs', () => {
  class FlatStack extends Stack {
    protected override allocateLogicalId(element: CfnElement): string {
      return flatLogicalId(element);
    }
  }

  it("gives what a flat construct holds the logical ID it would have as the stack's own child", () => {
    const stack = new FlatStack(new App(), 'Flat');
    new Queue(flat(new Construct(stack, 'Concern')), 'Work');
    new Queue(stack, 'Direct');
    const plain = new Stack(new App(), 'Plain');
    new Queue(plain, 'Work');
    new Queue(plain, 'Direct');
    expect(Object.keys(Template.fromStack(stack).toJSON().Resources).sort()).toEqual(Object.keys(Template.fromStack(plain).toJSON().Resources).sort());
  });

  it('refuses two resources that would share a logical ID once flattened', () => {
    const stack = new FlatStack(new App(), 'Flat');
    new Queue(flat(new Construct(stack, 'One')), 'Work');
    new Queue(flat(new Construct(stack, 'Other')), 'Work');
    expect(() => Template.fromStack(stack)).toThrow(/Flat\/One\/Work\/Resource and Flat\/Other\/Work\/Resource would both have the logical ID Work/);
  });
});

describe('route stacks (cdk/constructs/route-stacks.ts)', () => {
  const synth = () => buildApp({ context: { regions: 'us-east-1', 'aws:cdk:bundling-stacks': [] } }).stacks.get('us-east-1')!;
  const deploymentOf = (stack: Stack) =>
    Object.entries(Template.fromStack(stack).toJSON().Resources as Record<string, { Type: string; DependsOn?: string[] }>).find(
      ([, resource]) => resource.Type === 'AWS::ApiGateway::Deployment',
    )!;

  it("puts each route's function, role, permission and method in its bounded context's nested stack, and deploys the API after them all", () => {
    const stack = synth();
    const template = Template.fromStack(stack).toJSON().Resources as Record<string, { Type: string }>;
    // The region's stack keeps the API's own route (a RestApi needs a method of its own) and the authorizer.
    expect(Object.values(template).filter((resource) => resource.Type === 'AWS::ApiGateway::Method')).toHaveLength(1);
    expect(Object.values(template).filter((resource) => resource.Type === 'AWS::Lambda::Function').length).toBeLessThan(10);
    const nested = stack.node.findAll().filter((construct): construct is RouteStack => construct instanceof RouteStack);
    const [, deployment] = deploymentOf(stack);
    for (const routeStack of nested) {
      const resources = Object.values(Template.fromStack(routeStack).toJSON().Resources as Record<string, { Type: string; Properties: any }>);
      const methods = resources.filter((resource) => resource.Type === 'AWS::ApiGateway::Method');
      expect(methods.length, routeStack.node.id).toBeGreaterThan(0);
      // One function, role and Lambda permission per method: IAM stays per route.
      for (const type of ['AWS::Lambda::Function', 'AWS::IAM::Role', 'AWS::Lambda::Permission'])
        expect(
          resources.filter((resource) => resource.Type === type),
          `${routeStack.node.id} ${type}`,
        ).toHaveLength(methods.length);
      for (const method of methods) expect(method.Properties).toMatchObject({ AuthorizationType: 'CUSTOM', AuthorizerId: { Ref: expect.any(String) } });
      expect(deployment.DependsOn).toContain(Stack.of(routeStack).getLogicalId(routeStack.nestedStackResource!));
    }
  }, 120_000); // a synth takes seconds, more on a busy machine

  it("makes a new API deployment when a nested stack's method changes", () => {
    const [before] = deploymentOf(synth());
    const operation = operations.reportShuffleWorker as { query?: unknown };
    const query = operation.query;
    try {
      operation.query = z.object({ probe: z.string() });
      const [after] = deploymentOf(synth());
      expect(after).not.toBe(before);
    } finally {
      operation.query = query;
    }
    expect(deploymentOf(synth())[0]).toBe(before);
  }, 240_000);

  it('fails the synth, saying what to do, when a route stack grows past its budget', () => {
    const app = new App();
    const stack = new Stack(app, 'Budget');
    const restApi = new RestApi(stack, 'Api');
    restApi.root.addMethod('GET');
    const routeStack = new RouteStack(stack, 'Compute', { restApi, stageName: 'v1' });
    for (let index = 0; index <= ROUTE_STACK_BUDGET; index++) new Queue(routeStack, `Queue${index}`);
    expect(() => app.synth()).toThrow(/route stack Compute holds 201 resources, over its budget of 200 .*ROUTE_STACKS \(cdk\/constructs\/route-stacks.ts\)/);
  });

  it('names where a new bounded context goes', () => {
    expect(routeStackOf('compute')).toBe('Compute');
    expect(routeStackOf('discovery')).toBeUndefined();
    expect(() => routeStackOf('billing')).toThrow(
      /functions\/billing\/api\/ holds routes but no route stack takes the context billing: add it to ROUTE_STACKS/,
    );
  });
});
