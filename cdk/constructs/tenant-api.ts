import { Duration } from 'aws-cdk-lib';
import { AccessLogFormat, AuthorizationType, LambdaIntegration, LogGroupLogDestination, MethodLoggingLevel, RestApi, TokenAuthorizer, type IResource } from 'aws-cdk-lib/aws-apigateway';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { API_TOKEN_KEY_ALIAS } from '#events/tokens.ts';
import { ControlPlaneFunction } from './control-plane-function.ts';

export interface TenantApiProps {
  table: ITableV2;
  hostQueuePrefix: string;
  hostQueueArns: string;
  hostDlq: IQueue;
  /** Shuffle workers' inbound queues are made per job, named with this prefix. */
  shuffleQueuePrefix: string;
  shuffleQueueArns: string;
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
  /** The resource graph's FIFO queue: deleting a project addresses a release to it. */
  graphQueue: IQueue;
  /** Image content, uploaded in parts through presigned URLs. */
  imagesBucket: IBucket;
  /** Where completed uploads wait for their checksum to be verified. */
  imageVerifyQueue: IQueue;
}

/** One KMS action on the pair key, and only with the pair encryption context (see `pairKeyContext`). */
export function pairKeyStatement(key: IKey, action: string): PolicyStatement {
  return new PolicyStatement({ actions: [action], resources: [key.keyArn], conditions: { StringEquals: { 'kms:EncryptionContext:purpose': 'network-pair' } } });
}

/** Lets a function create queues named with a prefix (given to it in `variable`), and only those. */
function createsQueues(fn: ControlPlaneFunction, variable: string, prefix: string, arns: string) {
  fn.addEnvironment(variable, prefix);
  fn.addToRolePolicy(new PolicyStatement({ actions: ['sqs:CreateQueue', 'sqs:GetQueueUrl', 'sqs:GetQueueAttributes', 'sqs:TagQueue'], resources: [arns] }));
}

type Access = 'read' | 'write';

interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  entry: string;
  access: Access;
  /** What the route needs beyond the table. */
  extras?: (fn: ControlPlaneFunction, props: TenantApiProps) => void;
}

/** The REST API: one function per route, each granted only read or read/write on the table, and only the extras it uses. */
const routes: Route[] = [
  {
    method: 'POST',
    path: '/hosts',
    entry: 'functions/api/register-host.ts',
    access: 'write',
    extras: (fn, props) => {
      createsQueues(fn, 'HOST_QUEUE_PREFIX', props.hostQueuePrefix, props.hostQueueArns);
      fn.addEnvironment('HOST_DLQ_ARN', props.hostDlq.queueArn);
    },
  },
  { method: 'GET', path: '/hosts', entry: 'functions/api/list-hosts.ts', access: 'read' },
  { method: 'GET', path: '/hosts/{hostId}/forwarding-table', entry: 'functions/api/get-forwarding-table.ts', access: 'read' },
  { method: 'POST', path: '/networks', entry: 'functions/api/create-network.ts', access: 'write' },
  { method: 'GET', path: '/networks', entry: 'functions/api/list-networks.ts', access: 'read' },
  { method: 'GET', path: '/networks/{networkId}', entry: 'functions/api/get-network.ts', access: 'read' },
  {
    method: 'POST',
    path: '/vms',
    entry: 'functions/api/create-vm.ts',
    access: 'write',
    extras: (fn, props) => {
      // The bucket a copy of an image from another region goes to (the copy job writes it).
      fn.addEnvironment('VM_PAIR_KEY_ARN', props.vmPairKey.keyArn).addEnvironment('IMAGES_BUCKET', props.imagesBucket.bucketName);
      fn.addToRolePolicy(pairKeyStatement(props.vmPairKey, 'kms:GenerateDataKeyWithoutPlaintext'));
    },
  },
  { method: 'GET', path: '/vms', entry: 'functions/api/list-vms.ts', access: 'read' },
  { method: 'GET', path: '/vms/{vmId}', entry: 'functions/api/get-vm.ts', access: 'read' },
  { method: 'POST', path: '/vms/{vmId}/migrate', entry: 'functions/api/migrate-vm.ts', access: 'write' },
  { method: 'DELETE', path: '/vms/{vmId}', entry: 'functions/api/delete-vm.ts', access: 'write' },
  { method: 'GET', path: '/vms/{vmId}/host-keys', entry: 'functions/api/get-host-keys.ts', access: 'read' },
  {
    method: 'PUT',
    path: '/hosts/{hostId}/vms/{vmId}/host-keys',
    entry: 'functions/api/publish-host-keys.ts',
    access: 'write',
    extras: (fn, props) => {
      fn.addEnvironment('HOST_KEY_ATTESTATION_KEY_ARN', props.hostKeyAttestationKey.keyArn);
      props.hostKeyAttestationKey.grant(fn, 'kms:Sign');
    },
  },
  { method: 'POST', path: '/service-accounts', entry: 'functions/api/create-service-account.ts', access: 'write' },
  { method: 'GET', path: '/service-accounts', entry: 'functions/api/list-service-accounts.ts', access: 'read' },
  { method: 'GET', path: '/service-accounts/{serviceAccountId}', entry: 'functions/api/get-service-account.ts', access: 'read' },
  { method: 'PUT', path: '/vms/{vmId}/service-account', entry: 'functions/api/attach-service-account.ts', access: 'write' },
  { method: 'DELETE', path: '/vms/{vmId}/service-account', entry: 'functions/api/detach-service-account.ts', access: 'write' },
  {
    method: 'POST',
    path: '/hosts/{hostId}/service-account-credentials',
    entry: 'functions/api/issue-host-credentials.ts',
    access: 'read',
    extras: (fn, props) => {
      fn.addEnvironment('HOST_CREDENTIAL_KEY_ARN', props.hostCredentialKey.keyArn);
      props.hostCredentialKey.grant(fn, 'kms:Sign');
    },
  },
  { method: 'PUT', path: '/networks/{networkId}/allowed-sources/{sourceNetworkId}', entry: 'functions/api/allow-source.ts', access: 'write' },
  { method: 'DELETE', path: '/networks/{networkId}/allowed-sources/{sourceNetworkId}', entry: 'functions/api/disallow-source.ts', access: 'write' },
  { method: 'GET', path: '/networks/{networkId}/allowed-sources', entry: 'functions/api/list-allowed-sources.ts', access: 'read' },
  {
    method: 'POST',
    path: '/vms/{vmId}/connections',
    entry: 'functions/api/request-connection.ts',
    access: 'read',
    extras: (fn, props) => {
      fn.addEnvironment('VM_PAIR_KEY_ARN', props.vmPairKey.keyArn);
      fn.addToRolePolicy(pairKeyStatement(props.vmPairKey, 'kms:Decrypt'));
    },
  },
  { method: 'GET', path: '/hosts/{hostId}/vm-pair-keys', entry: 'functions/api/get-host-pair-keys.ts', access: 'read' },
  { method: 'PUT', path: '/vms/{vmId}/egress-policy', entry: 'functions/api/put-egress-policy.ts', access: 'write' },
  { method: 'PUT', path: '/vms/{vmId}/attributes', entry: 'functions/api/put-vm-attributes.ts', access: 'write' },
  { method: 'GET', path: '/hosts/{hostId}/vm-configs', entry: 'functions/api/get-host-vm-configs.ts', access: 'read' },
  {
    method: 'POST',
    path: '/shuffle-jobs',
    entry: 'functions/api/create-shuffle-job.ts',
    access: 'write',
    extras: (fn, props) => createsQueues(fn, 'SHUFFLE_QUEUE_PREFIX', props.shuffleQueuePrefix, props.shuffleQueueArns),
  },
  { method: 'GET', path: '/shuffle-jobs/{jobId}', entry: 'functions/api/get-shuffle-job.ts', access: 'read' },
  {
    method: 'DELETE',
    path: '/shuffle-jobs/{jobId}',
    entry: 'functions/api/delete-shuffle-job.ts',
    access: 'write',
    extras: (fn, props) => fn.addToRolePolicy(new PolicyStatement({ actions: ['sqs:DeleteQueue'], resources: [props.shuffleQueueArns] })),
  },
  { method: 'PUT', path: '/hosts/{hostId}/shuffle-jobs/{jobId}/workers/{vmId}', entry: 'functions/api/report-shuffle-worker.ts', access: 'write' },
  { method: 'DELETE', path: '/networks/{networkId}', entry: 'functions/api/delete-network.ts', access: 'write' },
  { method: 'DELETE', path: '/service-accounts/{serviceAccountId}', entry: 'functions/api/delete-service-account.ts', access: 'write' },
  { method: 'POST', path: '/projects', entry: 'functions/api/create-project.ts', access: 'write' },
  { method: 'GET', path: '/projects', entry: 'functions/api/list-projects.ts', access: 'read' },
  { method: 'GET', path: '/projects/{projectId}', entry: 'functions/api/get-project.ts', access: 'read' },
  { method: 'GET', path: '/projects/{projectId}/graph', entry: 'functions/api/get-project-graph.ts', access: 'read' },
  {
    method: 'DELETE',
    path: '/projects/{projectId}',
    entry: 'functions/api/delete-project.ts',
    access: 'write',
    extras: (fn, props) => {
      fn.addEnvironment('GRAPH_QUEUE_URL', props.graphQueue.queueUrl);
      props.graphQueue.grantSendMessages(fn);
    },
  },
  {
    method: 'POST',
    path: '/images',
    entry: 'functions/api/create-image.ts',
    access: 'write',
    extras: (fn, props) => {
      fn.addEnvironment('IMAGES_BUCKET', props.imagesBucket.bucketName);
      // Presigned part uploads act with this function's permissions.
      props.imagesBucket.grantPut(fn, 'images/*');
    },
  },
  { method: 'GET', path: '/images', entry: 'functions/api/list-images.ts', access: 'read' },
  { method: 'GET', path: '/images/{imageId}', entry: 'functions/api/get-image.ts', access: 'read' },
  {
    method: 'POST',
    path: '/images/{imageId}/complete',
    entry: 'functions/api/complete-image-upload.ts',
    access: 'write',
    extras: (fn, props) => {
      fn.addEnvironment('IMAGE_VERIFY_QUEUE_URL', props.imageVerifyQueue.queueUrl);
      props.imagesBucket.grantPut(fn, 'images/*');
      props.imageVerifyQueue.grantSendMessages(fn);
    },
  },
  { method: 'POST', path: '/storage-pools', entry: 'functions/api/register-storage-pool.ts', access: 'write' },
  { method: 'GET', path: '/storage-pools', entry: 'functions/api/list-storage-pools.ts', access: 'read' },
  { method: 'POST', path: '/disks', entry: 'functions/api/create-disk.ts', access: 'write' },
  { method: 'GET', path: '/disks', entry: 'functions/api/list-disks.ts', access: 'read' },
  { method: 'GET', path: '/disks/{diskId}', entry: 'functions/api/get-disk.ts', access: 'read' },
  { method: 'PATCH', path: '/disks/{diskId}', entry: 'functions/api/modify-disk.ts', access: 'write' },
  { method: 'DELETE', path: '/disks/{diskId}', entry: 'functions/api/delete-disk.ts', access: 'write' },
  { method: 'POST', path: '/disks/{diskId}/attach', entry: 'functions/api/attach-disk.ts', access: 'write' },
  { method: 'POST', path: '/disks/{diskId}/detach', entry: 'functions/api/detach-disk.ts', access: 'write' },
];

export class TenantApi extends Construct {
  readonly restApi: RestApi;

  constructor(scope: Construct, id: string, props: TenantApiProps) {
    super(scope, id);
    const authorizerFunction = new ControlPlaneFunction(this, 'Authorizer', {
      entry: 'functions/auth/authorize-api.ts',
      environment: { API_TOKEN_KEY_ARNS: [props.apiTokenKey.keyArn, ...props.otherRegionsApiTokenKeys].join(',') },
    });
    props.apiTokenKey.grant(authorizerFunction, 'kms:GetPublicKey');
    if (props.otherRegionsApiTokenKeys.length > 0) {
      // Those keys' ids are unknown here; IAM matches them by the alias they carry.
      authorizerFunction.addToRolePolicy(
        new PolicyStatement({
          actions: ['kms:GetPublicKey', 'kms:DescribeKey'],
          resources: props.otherRegionsApiTokenKeys.map((alias) => alias.replace(/:alias\/.*$/, ':key/*')),
          conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': API_TOKEN_KEY_ALIAS } },
        }),
      );
    }
    const authorizer = new TokenAuthorizer(this, 'BearerTokens', {
      handler: authorizerFunction,
      identitySource: 'method.request.header.Authorization',
      validationRegex: '^Bearer [-0-9A-Za-z_.]+$',
      resultsCacheTtl: Duration.minutes(5),
    });

    const accessLogs = new LogGroup(this, 'AccessLogs', { retention: RetentionDays.ONE_MONTH });
    this.restApi = new RestApi(this, 'RestApi', {
      restApiName: 'stratoplane',
      description: 'Stratoplane tenant and operator API',
      cloudWatchRole: true,
      deployOptions: {
        stageName: 'v1',
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

    for (const route of routes) {
      const fn = new ControlPlaneFunction(this, functionId(route), {
        entry: route.entry,
        timeout: Duration.seconds(15),
        environment: { TABLE_NAME: props.table.tableName },
      });
      if (route.access === 'write') props.table.grantReadWriteData(fn);
      else props.table.grantReadData(fn);
      route.extras?.(fn, props);
      resourceAt(this.restApi.root, route.path).addMethod(route.method, new LambdaIntegration(fn));
    }
  }
}

function resourceAt(root: IResource, path: string): IResource {
  return path
    .split('/')
    .filter(Boolean)
    .reduce((parent, part) => parent.getResource(part) ?? parent.addResource(part), root);
}

/** `POST /vms/{vmId}/migrate` → `PostVmsVmIdMigrate`. */
function functionId(route: Route): string {
  const words = [route.method.toLowerCase(), ...route.path.split(/[^A-Za-z0-9]+/)].filter(Boolean);
  return words.map((word) => word[0]!.toUpperCase() + word.slice(1)).join('');
}
