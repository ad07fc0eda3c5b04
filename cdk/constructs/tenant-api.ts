import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  AuthorizationType,
  LambdaIntegration,
  LogGroupLogDestination,
  Model,
  type JsonSchema,
  MethodLoggingLevel,
  ResponseType,
  RestApi,
  TokenAuthorizer,
  type IRequestValidator,
  type IResource,
  type MethodOptions,
} from 'aws-cdk-lib/aws-apigateway';
import type { ITable, ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { z } from 'zod';
import { operations, type Operation } from '#events/operations.ts';
import { apiHandlerEntry } from '../handler-entries.ts';
import { keyAlias } from '#events/naming.ts';
import { deploymentOf } from '../deployment.ts';
import type { FunctionSetting } from '#events/function-environment.ts';
import { acknowledge, acknowledgeWildcards } from '../nag.ts';
import { ControlPlaneFunction } from './control-plane-function.ts';
import { acknowledgeImagePrefix } from './image-pipeline.ts';
import { COGNITO_REASON, RouteStack, routeStackOf } from './route-stacks.ts';
import { otherRegionsKeysReason, pairKeyStatement } from './keys.ts';
import type { QueueFamily } from './queue-family.ts';

export interface TenantApiProps {
  table: ITableV2;
  /** Private ranges the operator opened to VMs' egress; handed to host agents with their VMs' configs. */
  egressOpenCidrs: readonly string[];
  /** Endpoint versions each host agent has acknowledged, per VM. */
  convergenceTable: ITable;
  /** Host agents' heartbeats: each host's health. */
  livenessTable: ITable;
  /** Host queues: registering a host makes its queue. */
  hostQueues: QueueFamily;
  hostDlq: IQueue;
  /** Shuffle workers' inbound queues, made per job. */
  shuffleQueues: QueueFamily;
  /** Signs API bearer tokens; the authorizer verifies them with its public key. */
  apiTokenKey: IKey;
  /** The other regions' API token keys, by alias ARN: a token issued in any region is good in all. */
  otherRegionsApiTokenKeys: string[];
  /** Signs attestations of VM host keys. */
  hostKeyAttestationKey: IKey;
  /** Signs hosts' long-term service-account credentials. */
  hostCredentialKey: IKey;
  /** Wraps VMs' network-pair secrets. */
  vmPairKey: IKey;
  /** HMAC key list routes derive their cursor-signing key from. */
  listCursorKey: IKey;
  /** The resource graph's FIFO queue: deleting a project addresses a release to it. */
  graphQueue: IQueue;
  /** Image content, uploaded in parts through presigned URLs. */
  imagesBucket: IBucket;
  /** Where completed uploads wait for their checksum to be verified. */
  imageVerifyQueue: IQueue;
}

/** Lets a function create queues of a family (its prefix given to it in `variable`), and only those. */
function createsQueues(fn: ControlPlaneFunction, variable: FunctionSetting, family: QueueFamily) {
  fn.setting(variable, family.prefix);
  family.grant(fn, 'sqs:CreateQueue', 'sqs:GetQueueUrl', 'sqs:GetQueueAttributes', 'sqs:TagQueue');
}

/** Uploads go to the images bucket's `images/` prefix (CDK's put grant includes aborting them). */
function usesImagePrefix(fn: ControlPlaneFunction, props: TenantApiProps) {
  acknowledgeImagePrefix(fn, props.imagesBucket, ['s3:Abort*']);
}

/** A list route: signs and checks its `nextToken` cursors with a key derived once per container (one kms:GenerateMac). */
function signsListCursors(fn: ControlPlaneFunction, props: TenantApiProps) {
  fn.setting('listCursorKeyArn', props.listCursorKey.keyArn);
  props.listCursorKey.grantGenerateMac(fn);
}

type Access = 'none' | 'read' | 'write';

function usesConvergenceTable(fn: ControlPlaneFunction, props: TenantApiProps, access: 'read' | 'write') {
  fn.setting('convergenceTableName', props.convergenceTable.tableName);
  if (access === 'read') props.convergenceTable.grantReadData(fn);
  else props.convergenceTable.grantWriteData(fn);
}

/** Reads hosts' heartbeats (their health), or records them (`write`: heartbeats only, no reads). */
function usesLivenessTable(fn: ControlPlaneFunction, props: TenantApiProps, access: 'read' | 'read-write' | 'write') {
  fn.setting('livenessTableName', props.livenessTable.tableName);
  // The table's grants, which include its key's (it is encrypted with the region's data key).
  if (access !== 'write') props.livenessTable.grantReadData(fn);
  if (access !== 'read') props.livenessTable.grantWriteData(fn);
}
const readsHealth = (fn: ControlPlaneFunction, props: TenantApiProps) => usesLivenessTable(fn, props, 'read');

interface Route {
  operation: Operation;
  /** What the function may do with the table; `none` for a route that does not touch it. */
  access: Access;
  /** What the route needs beyond the table. */
  extras?: (fn: ControlPlaneFunction, props: TenantApiProps) => void;
}

/**
 * What a route that moves a VM to another host needs: a new pair secret for the VM (what its old
 * host knew of the old one is worth nothing), its new host named on the queues of the shuffle jobs
 * it works for, and its new endpoint sent to the hosts that need it (the fast path).
 */
function movesVms(fn: ControlPlaneFunction, props: TenantApiProps): void {
  fn.setting('vmPairKeyArn', props.vmPairKey.keyArn);
  fn.addToRolePolicy(pairKeyStatement(props.vmPairKey, 'kms:GenerateDataKeyWithoutPlaintext'));
  props.shuffleQueues.grant(fn, 'sqs:TagQueue', 'sqs:UntagQueue');
  sendsEndpoints(fn, props);
}

/** A route that commits an endpoint change sends it to the hosts that need it itself (the fast path; the stream is the backstop). */
function sendsEndpoints(fn: ControlPlaneFunction, props: TenantApiProps): void {
  props.hostQueues.grant(fn, 'sqs:SendMessage');
}

/** The REST API: one function per operation, each granted no, read or read/write access to the table, and only the extras it uses. */
const routes: Route[] = [
  { operation: operations.getApiDescription, access: 'none' },
  {
    operation: operations.registerHost,
    access: 'write',
    extras: (fn, props) => {
      createsQueues(fn, 'hostQueuePrefix', props.hostQueues);
      fn.setting('hostDlqArn', props.hostDlq.queueArn);
      usesLivenessTable(fn, props, 'read-write');
    },
  },
  { operation: operations.listHosts, access: 'read', extras: readsHealth },
  { operation: operations.getHost, access: 'read', extras: readsHealth },
  { operation: operations.cordonHost, access: 'write', extras: readsHealth },
  { operation: operations.uncordonHost, access: 'write', extras: readsHealth },
  {
    operation: operations.drainHost,
    access: 'write',
    extras: (fn, props) => {
      movesVms(fn, props);
      readsHealth(fn, props);
    },
  },
  // Heartbeats touch only the liveness table: one write each.
  { operation: operations.sendHeartbeat, access: 'none', extras: (fn, props) => usesLivenessTable(fn, props, 'write') },
  { operation: operations.revokeToken, access: 'write' },
  { operation: operations.getForwardingTable, access: 'read' },
  { operation: operations.createNetwork, access: 'write' },
  { operation: operations.listNetworks, access: 'read', extras: signsListCursors },
  { operation: operations.getNetwork, access: 'read' },
  {
    operation: operations.createVm,
    access: 'write',
    extras: (fn, props) => {
      // The bucket a copy of an image from another region goes to (the copy job writes it).
      fn.setting('vmPairKeyArn', props.vmPairKey.keyArn).setting('imagesBucket', props.imagesBucket.bucketName);
      fn.addToRolePolicy(pairKeyStatement(props.vmPairKey, 'kms:GenerateDataKeyWithoutPlaintext'));
      readsHealth(fn, props);
      sendsEndpoints(fn, props);
    },
  },
  {
    operation: operations.listVms,
    access: 'read',
    extras: (fn, props) => {
      signsListCursors(fn, props);
      readsHealth(fn, props);
    },
  },
  { operation: operations.getVm, access: 'read', extras: readsHealth },
  { operation: operations.startVm, access: 'write' },
  { operation: operations.stopVm, access: 'write' },
  { operation: operations.rebootVm, access: 'write' },
  { operation: operations.getVmConsoleOutput, access: 'read' },
  { operation: operations.reportVmState, access: 'write' },
  // A move at once, and a live migration at its cut-over (the destination's report).
  {
    operation: operations.migrateVm,
    access: 'write',
    extras: (fn, props) => {
      movesVms(fn, props);
      readsHealth(fn, props);
    },
  },
  { operation: operations.reportMigration, access: 'write', extras: movesVms },
  { operation: operations.getMigrationConvergence, access: 'read', extras: (fn, props) => usesConvergenceTable(fn, props, 'read') },
  { operation: operations.getVmConvergence, access: 'read', extras: (fn, props) => usesConvergenceTable(fn, props, 'read') },
  // Acknowledgements touch only the convergence table.
  { operation: operations.acknowledgeEndpoints, access: 'none', extras: (fn, props) => usesConvergenceTable(fn, props, 'write') },
  { operation: operations.deleteVm, access: 'write', extras: sendsEndpoints },
  { operation: operations.getHostKeys, access: 'read' },
  {
    operation: operations.publishHostKeys,
    access: 'write',
    extras: (fn, props) => {
      fn.setting('hostKeyAttestationKeyArn', props.hostKeyAttestationKey.keyArn);
      props.hostKeyAttestationKey.grant(fn, 'kms:Sign');
    },
  },
  { operation: operations.createServiceAccount, access: 'write' },
  { operation: operations.listServiceAccounts, access: 'read', extras: signsListCursors },
  { operation: operations.getServiceAccount, access: 'read' },
  { operation: operations.attachServiceAccount, access: 'write' },
  { operation: operations.detachServiceAccount, access: 'write' },
  {
    operation: operations.issueHostCredentials,
    access: 'read',
    extras: (fn, props) => {
      fn.setting('hostCredentialKeyArn', props.hostCredentialKey.keyArn);
      props.hostCredentialKey.grant(fn, 'kms:Sign');
      // A host's first credential gives it its opaque token reference, kept on its item (hostTokenRef): one update, no other write.
      props.table.grant(fn, 'dynamodb:UpdateItem');
    },
  },
  { operation: operations.allowSource, access: 'write' },
  { operation: operations.disallowSource, access: 'write' },
  { operation: operations.listAllowedSources, access: 'read' },
  {
    operation: operations.requestConnection,
    access: 'read',
    extras: (fn, props) => {
      fn.setting('vmPairKeyArn', props.vmPairKey.keyArn);
      fn.addToRolePolicy(pairKeyStatement(props.vmPairKey, 'kms:Decrypt'));
    },
  },
  { operation: operations.revokePair, access: 'write' },
  { operation: operations.liftPairRevocation, access: 'write' },
  { operation: operations.listPairRevocations, access: 'read' },
  { operation: operations.putEgressPolicy, access: 'write' },
  { operation: operations.putVmAttributes, access: 'write' },
  {
    operation: operations.getHostVmConfigs,
    access: 'read',
    extras: (fn, props) => {
      fn.setting('egressOpenCidrs', props.egressOpenCidrs.join(',')).setting('imagesBucket', props.imagesBucket.bucketName);
      // The hosts fetch their VMs' images through URLs presigned with this function's permissions.
      props.imagesBucket.grantRead(fn, 'images/*');
      acknowledgeImagePrefix(fn, props.imagesBucket, ['s3:GetObject*', 's3:GetBucket*', 's3:List*']);
    },
  },
  {
    operation: operations.createShuffleJob,
    access: 'write',
    extras: (fn, props) => createsQueues(fn, 'shuffleQueuePrefix', props.shuffleQueues),
  },
  { operation: operations.getShuffleJob, access: 'read' },
  {
    operation: operations.deleteShuffleJob,
    access: 'write',
    extras: (fn, props) => props.shuffleQueues.grant(fn, 'sqs:DeleteQueue'),
  },
  {
    operation: operations.reportShuffleWorker,
    access: 'write',
    // A worker's new host taking its spill over: the job's queues leave the host it left out.
    extras: (fn, props) => props.shuffleQueues.grant(fn, 'sqs:TagQueue', 'sqs:UntagQueue'),
  },
  { operation: operations.issueShuffleHandoff, access: 'write' },
  { operation: operations.checkShuffleHandoff, access: 'read' },
  { operation: operations.deleteNetwork, access: 'write' },
  { operation: operations.deleteServiceAccount, access: 'write' },
  { operation: operations.createProject, access: 'write' },
  { operation: operations.listProjects, access: 'read', extras: signsListCursors },
  { operation: operations.getProject, access: 'read' },
  { operation: operations.getProjectGraph, access: 'read' },
  {
    operation: operations.deleteProject,
    access: 'write',
    extras: (fn, props) => {
      fn.setting('graphQueueUrl', props.graphQueue.queueUrl);
      props.graphQueue.grantSendMessages(fn);
    },
  },
  {
    operation: operations.createImage,
    access: 'write',
    extras: (fn, props) => {
      fn.setting('imagesBucket', props.imagesBucket.bucketName);
      // Presigned part uploads act with this function's permissions.
      props.imagesBucket.grantPut(fn, 'images/*');
      usesImagePrefix(fn, props);
    },
  },
  { operation: operations.listImages, access: 'read', extras: signsListCursors },
  { operation: operations.getImage, access: 'read' },
  {
    operation: operations.completeImageUpload,
    access: 'write',
    extras: (fn, props) => {
      fn.setting('imageVerifyQueueUrl', props.imageVerifyQueue.queueUrl);
      props.imagesBucket.grantPut(fn, 'images/*');
      usesImagePrefix(fn, props);
      props.imageVerifyQueue.grantSendMessages(fn);
    },
  },
  { operation: operations.registerStoragePool, access: 'write' },
  { operation: operations.listStoragePools, access: 'read' },
  { operation: operations.createDisk, access: 'write' },
  { operation: operations.listDisks, access: 'read', extras: signsListCursors },
  { operation: operations.getDisk, access: 'read' },
  { operation: operations.modifyDisk, access: 'write' },
  { operation: operations.deleteDisk, access: 'write' },
  { operation: operations.attachDisk, access: 'write' },
  { operation: operations.detachDisk, access: 'write' },
  { operation: operations.getQuotas, access: 'read' },
  { operation: operations.putQuota, access: 'write' },
];

/**
 * The tenant and operator REST API, with its bearer-token authorizer: one function per operation
 * of events/operations.ts, each granted only what its route uses.
 */
export class TenantApi extends Construct {
  readonly restApi: RestApi;

  constructor(scope: Construct, id: string, props: TenantApiProps) {
    super(scope, id);
    const authorizerFunction = new ControlPlaneFunction(this, 'Authorizer', {
      entry: 'functions/identity/auth/authorize-api.ts',
      settings: { apiTokenKeyArns: [props.apiTokenKey.keyArn, ...props.otherRegionsApiTokenKeys].join(','), tableName: props.table.tableName },
    });
    props.apiTokenKey.grant(authorizerFunction, 'kms:GetPublicKey');
    // Only to look up revocations, by key (and to decrypt them, when the table has its own key).
    props.table.grant(authorizerFunction, 'dynamodb:GetItem');
    props.table.encryptionKey?.grant(authorizerFunction, 'kms:Decrypt');
    if (props.otherRegionsApiTokenKeys.length > 0) {
      // Those keys' ids are unknown here; IAM matches them by the alias they carry.
      authorizerFunction.addToRolePolicy(
        new PolicyStatement({
          actions: ['kms:GetPublicKey', 'kms:DescribeKey'],
          resources: props.otherRegionsApiTokenKeys.map((alias) => alias.replace(/:alias\/.*$/, ':key/*')),
          conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': keyAlias('api-tokens', deploymentOf(this)) } },
        }),
      );
      acknowledgeWildcards(authorizerFunction, otherRegionsKeysReason, {
        resources: props.otherRegionsApiTokenKeys.map((alias) => alias.replace(/:alias\/.*$/, ':key/*')),
      });
    }
    const authorizer = new TokenAuthorizer(this, 'BearerTokens', {
      handler: authorizerFunction,
      identitySource: 'method.request.header.Authorization',
      validationRegex: '^Bearer [-0-9A-Za-z_.]+$',
      // A revoked token is refused once its cached answer expires.
      resultsCacheTtl: Duration.minutes(1),
    });

    // Who called what: kept when the stack is deleted, gone with a first deploy that rolls back.
    const accessLogs = new LogGroup(this, 'AccessLogs', { retention: RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE });
    this.restApi = new RestApi(this, 'RestApi', {
      restApiName: Stack.of(this).stackName,
      description: 'Stratoplane tenant and operator API',
      cloudWatchRole: true,
      // The region's API Gateway account settings name this role, for every API of the account: a
      // stack delete keeps it (another deployment's logs may go through it); a rolled-back first deploy removes it.
      cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
      deployOptions: {
        stageName: STAGE_NAME,
        tracingEnabled: true,
        loggingLevel: MethodLoggingLevel.ERROR,
        accessLogDestination: new LogGroupLogDestination(accessLogs),
        accessLogFormat: AccessLogFormat.jsonWithStandardFields(),
        throttlingRateLimit: 100,
        throttlingBurstLimit: 200,
      },
      // Every route needs a bearer token; each handler then checks its scope and the tenant.
      defaultMethodOptions: { authorizer, authorizationType: AuthorizationType.CUSTOM },
    });
    acknowledge(this.restApi, 'COG4', COGNITO_REASON);
    acknowledge(
      this.restApi,
      'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      "AWS's policy for the API Gateway account role, which writes the stage's access and execution logs",
    );
    acknowledge(
      this.restApi.deploymentStage,
      'APIG3',
      'Every method needs a signed bearer token and the stage is throttled (100 requests/s, burst 200); a WAF web ACL is left to operators who want one (it is billed per ACL and request)',
    );
    // A request API Gateway can tell is malformed never reaches a function: path and required query
    // parameters, and a JSON body against its operation's schema (the one the OpenAPI document states).
    const validator = this.restApi.addRequestValidator('RequestValidator', { validateRequestBody: true, validateRequestParameters: true });
    for (const type of [ResponseType.BAD_REQUEST_BODY, ResponseType.BAD_REQUEST_PARAMETERS]) {
      this.restApi.addGatewayResponse(type.responseType, {
        type,
        statusCode: '400',
        templates: { 'application/json': '{"message": $context.error.validationErrorString}' },
      });
    }
    // API Gateway answers an unknown path or method with 403 "Missing Authentication Token";
    // clients get a 404 that says so instead (the local gateway reads this from the template).
    this.restApi.addGatewayResponse('UnknownRoute', {
      type: ResponseType.MISSING_AUTHENTICATION_TOKEN,
      statusCode: '404',
      templates: { 'application/json': JSON.stringify({ message: 'no route for this method and path; GET /openapi.json lists them' }) },
    });

    const unrouted = Object.keys(operations).filter((operationId) => !routes.some((route) => route.operation.operationId === operationId));
    if (unrouted.length > 0) throw new Error(`operations without a route in TenantApi: ${unrouted.join(', ')}`);
    // One log group for all route functions: a group each would cost a resource per route, and
    // every line names its function (Powertools' function_name).
    const functionLogs = new LogGroup(this, 'FunctionLogs', { retention: RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY });
    // Each route in the nested stack of its bounded context (route-stacks.ts), the API resources
    // routes of several stacks share in this one.
    const placed = routes.map((route) => ({ route, stackId: routeStackOf(contextOf(route.operation)) }));
    const stacksUsing = new Map<string, Set<string | undefined>>();
    for (const { route, stackId } of placed)
      for (const prefix of prefixesOf(route.operation.path)) stacksUsing.set(prefix, (stacksUsing.get(prefix) ?? new Set()).add(stackId));
    const shared = (prefix: string) => stacksUsing.get(prefix)!.size > 1;
    const routeStacks = new Map<string, RouteStack>();
    const deployment = this.restApi.latestDeployment!;
    for (const { route, stackId } of placed) {
      const { operation } = route;
      let routeStack = stackId ? routeStacks.get(stackId) : undefined;
      if (stackId && !routeStack) {
        routeStack = new RouteStack(this, stackId, { restApi: this.restApi, stageName: STAGE_NAME });
        routeStacks.set(stackId, routeStack);
        // The API is deployed once every route stack's methods are there.
        deployment.node.addDependency(routeStack);
      }
      const fn = new ControlPlaneFunction(routeStack ?? this, functionId(operation), {
        logGroup: functionLogs,
        entry: apiHandlerEntry(operation.operationId),
        timeout: Duration.seconds(15),
        settings: route.access === 'none' ? {} : { tableName: props.table.tableName },
      });
      if (route.access === 'write') props.table.grantReadWriteData(fn);
      if (route.access === 'read') props.table.grantReadData(fn);
      route.extras?.(fn, props);
      const options = this.methodOptions(operation, routeStack, validator, authorizer);
      // No permission for the console's test-invoke stage: one Lambda permission per method, not two.
      this.resourceFor(operation.path, routeStack, shared).addMethod(operation.method, new LambdaIntegration(fn, { allowTestInvoke: false }), options);
      // A method of a nested stack is not the API's own, so CDK does not make the deployment change
      // with it: what defines it is added to the deployment's logical ID here, so that a new or
      // changed route makes a new deployment.
      if (routeStack) deployment.addToLogicalId({ route: { stack: stackId, function: fn.node.path, ...methodDefinition(operation) } });
    }
  }

  /**
   * The API resource at `path`: in this stack for a route of this stack or a path routes of several
   * stacks share, else in the route's stack (under the deepest shared one, imported).
   */
  private resourceFor(path: string, routeStack: RouteStack | undefined, shared: (prefix: string) => boolean): IResource {
    let inRegionStack: IResource = this.restApi.root;
    let inRouteStack: IResource | undefined;
    for (const prefix of prefixesOf(path)) {
      const part = prefix.split('/').pop()!;
      if (!inRouteStack && (!routeStack || shared(prefix))) {
        inRegionStack = inRegionStack.getResource(part) ?? inRegionStack.addResource(part);
        continue;
      }
      inRouteStack ??= routeStack!.importResource(inRegionStack);
      inRouteStack = inRouteStack.getResource(part) ?? inRouteStack.addResource(part);
    }
    return inRouteStack ?? (routeStack ? routeStack.importResource(inRegionStack) : inRegionStack);
  }

  /** What API Gateway checks of an operation's request before its function runs, and who may call it. */
  private methodOptions(
    operation: Operation,
    routeStack: RouteStack | undefined,
    requestValidator: IRequestValidator,
    authorizer: TokenAuthorizer,
  ): MethodOptions {
    const { requestParameters, bodySchema } = methodDefinition(operation);
    const scope = routeStack ?? this;
    return {
      // Set on every method: a nested stack's imported API has no default method options.
      authorizer,
      authorizationType: AuthorizationType.CUSTOM,
      requestValidator,
      requestParameters,
      requestModels: bodySchema
        ? {
            'application/json': new Model(scope, `${functionId(operation)}Body`, {
              restApi: routeStack?.api ?? this.restApi,
              contentType: 'application/json',
              modelName: `${operation.operationId}Body`,
              schema: bodySchema as JsonSchema,
            }),
          }
        : undefined,
    };
  }
}

/** The stage the API is deployed to. */
const STAGE_NAME = 'v1';

/** What defines an operation's method besides its function: path, HTTP method, required parameters, body schema. */
function methodDefinition(operation: Operation) {
  const pathParameters = Object.keys(inputSchemaOf(operation.params).properties ?? {});
  const requiredQuery = operation.query ? (inputSchemaOf(operation.query).required ?? []) : [];
  return {
    method: operation.method,
    path: operation.path,
    requestParameters: Object.fromEntries([
      ...pathParameters.map((name) => [`method.request.path.${name}`, true]),
      ...requiredQuery.map((name) => [`method.request.querystring.${name}`, true]),
    ]) as Record<string, boolean>,
    bodySchema: operation.body ? inputSchemaOf(operation.body) : undefined,
  };
}

/** The bounded context whose `api/` folder holds the operation's handler (`createVm` → `compute`). */
function contextOf(operation: Operation): string {
  return apiHandlerEntry(operation.operationId).split('/')[1]!;
}

/** `/vms/{vmId}/migrate` → `/vms`, `/vms/{vmId}`, `/vms/{vmId}/migrate`. */
function prefixesOf(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return parts.map((_, index) => `/${parts.slice(0, index + 1).join('/')}`);
}

/** A schema as JSON Schema draft 4 (what API Gateway models use) of what callers send; refinements stay with the handler. */
function inputSchemaOf(schema: z.ZodType): { properties?: Record<string, unknown>; required?: string[] } {
  return z.toJSONSchema(schema, { target: 'draft-4', io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, unknown>; required?: string[] };
}

/** `POST /vms/{vmId}/migrate` → `PostVmsVmIdMigrate`. */
function functionId(operation: Operation): string {
  const words = [operation.method.toLowerCase(), ...operation.path.split(/[^A-Za-z0-9]+/)].filter(Boolean);
  return words.map((word) => word[0]!.toUpperCase() + word.slice(1)).join('');
}
