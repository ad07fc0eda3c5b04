import { Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { AttributeType, BillingMode, StreamViewType, Table, TableEncryption, TableEncryptionV2, TableV2, type ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Key, KeySpec, KeyUsage } from 'aws-cdk-lib/aws-kms';
import { StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq, SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { BlockPublicAccess, Bucket, BucketEncryption } from 'aws-cdk-lib/aws-s3';
import { Queue, QueueEncryption, type QueueProps } from 'aws-cdk-lib/aws-sqs';
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { API_TOKEN_KEY_ALIAS, HOST_CREDENTIAL_KEY_ALIAS, HOST_KEY_ATTESTATION_KEY_ALIAS, VM_PAIR_KEY_ALIAS } from '#events/tokens.ts';
import { deadLetterQueuePrefix, graphQueueName, imagesBucketName, METADATA_TABLE_NAME } from '#events/naming.ts';
import { ipv4Cidr } from '#events/identifiers.ts';
import { CALLER_HOST_ID, SHUFFLE_HOSTS_TAG_KEYS } from '#events/host-access.ts';
import { ControlPlaneFunction } from './constructs/control-plane-function.ts';
import { pairKeyStatement, TenantApi } from './constructs/tenant-api.ts';

/** How many times a queue's handler tries a message before it moves it to the DLQ with the reason. */
const HANDLER_ATTEMPTS = 5;

/** Control-plane queues: encrypted with the region's data key, TLS only. */
const encryptedQueue = (dataKey: Key) => ({ encryption: QueueEncryption.KMS, encryptionMasterKey: dataKey, enforceSSL: true });

/**
 * Concurrency reserved for each stream and queue consumer, which is also its ceiling: a burst of
 * changes or a backlog can neither starve the API's functions of the region's Lambda concurrency
 * nor be starved by them. 95 in all, well inside the 900 an account's default 1,000 leaves
 * reservable. Stream consumers need at most one per shard.
 */
export const CONSUMER_CONCURRENCY = { NetworkChanges: 20, ImageCopyJobs: 5, FanOut: 50, ResourceGraph: 10, VerifyImages: 5, CopyImages: 5 } as const;

export interface ControlPlaneStackProps extends StackProps {
  /** Every region the control plane runs in; the first one's stack defines the global table. */
  regions: readonly string[];
  /** Private ranges opened to VMs' egress (see egressOpenCidrsOf); validated here, at synth. */
  egressOpenCidrs?: readonly string[];
}

/**
 * The whole control plane of one region: its replica of the global metadata table with its
 * stream, the fan-out path that turns endpoint changes into per-host queue messages, images and
 * their cross-region copies, the resource graph, and the tenant/operator REST API.
 */
export class ControlPlaneStack extends Stack {
  readonly table: ITableV2;
  private readonly handlerAttempts = new Map<Queue, number>();

  constructor(scope: Construct, id: string, props: ControlPlaneStackProps) {
    super(scope, id, props);
    const [primaryRegion, ...replicaRegions] = props.regions as [string, ...string[]];
    const otherRegions = props.regions.filter((region) => region !== this.region);

    const dataKey = new Key(this, 'DataKey', {
      description: 'Encrypts Stratoplane metadata at rest and control-plane queues',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Asymmetric: KMS signs tokens (operators issue them); verifiers hold only the public key.
    const apiTokenKey = new Key(this, 'ApiTokenKey', {
      description: 'Signs Stratoplane API bearer tokens (ES256)',
      keySpec: KeySpec.ECC_NIST_P256,
      keyUsage: KeyUsage.SIGN_VERIFY,
      alias: API_TOKEN_KEY_ALIAS,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const hostKeyAttestationKey = new Key(this, 'HostKeyAttestationKey', {
      description: 'Signs attestations of VM SSH host keys (ES256)',
      keySpec: KeySpec.ECC_NIST_P256,
      keyUsage: KeyUsage.SIGN_VERIFY,
      alias: HOST_KEY_ATTESTATION_KEY_ALIAS,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const hostCredentialKey = new Key(this, 'HostCredentialKey', {
      description: "Signs hosts' long-term service-account credentials (ES256)",
      keySpec: KeySpec.ECC_NIST_P256,
      keyUsage: KeyUsage.SIGN_VERIFY,
      alias: HOST_CREDENTIAL_KEY_ALIAS,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const vmPairKey = new Key(this, 'VmPairKey', {
      description: "Wraps VMs' network-pair secrets (data keys stored only encrypted)",
      enableKeyRotation: true,
      alias: VM_PAIR_KEY_ALIAS,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // List routes derive their cursor-signing key from it (functions/core/pagination.ts); HMAC keys do not rotate.
    const listCursorKey = new Key(this, 'ListCursorKey', {
      description: 'Signs list cursors (nextToken), so clients cannot forge or reuse them across lists',
      keySpec: KeySpec.HMAC_256,
      keyUsage: KeyUsage.GENERATE_VERIFY_MAC,
      alias: 'alias/stratoplane/list-cursors',
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.table = this.region === primaryRegion ? this.globalTable(dataKey, replicaRegions) : this.replicaTable();

    // Six times the fan-out function's timeout (AWS's advice); also how long a change can wait after
    // its handler died mid-batch, so it stays short (agents catch up sooner when they lose contact).
    const fanOutQueue = this.workQueue('FanOut', 'fan-out', dataKey, { visibilityTimeout: Duration.seconds(60) });
    const streamFailures = this.deadLetterQueue('StreamFailureDlq', 'stream-failures', encryptedQueue(dataKey));
    // Host queues are created at registration, so they use SQS-managed keys: agents need no KMS grant.
    const hostDlq = this.deadLetterQueue('HostDlq', 'host', { encryption: QueueEncryption.SQS_MANAGED, enforceSSL: true });
    const hostQueuePrefix = `${this.stackName}-host-`;
    const hostQueueArns = this.formatArn({ service: 'sqs', resource: `${hostQueuePrefix}*` });
    const shuffleQueuePrefix = `${this.stackName}-shuffle-`;
    const shuffleQueueArns = this.formatArn({ service: 'sqs', resource: `${shuffleQueuePrefix}*` });

    const networkChanges = new ControlPlaneFunction(this, 'NetworkChanges', {
      entry: 'functions/host-sync/streams/network-changes.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.NetworkChanges,
      timeout: Duration.seconds(30),
      settings: { fanOutQueueUrl: fanOutQueue.queueUrl },
    });
    fanOutQueue.grantSendMessages(networkChanges);
    const tableStream = () =>
      new DynamoEventSource(this.table, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(0),
        bisectBatchOnError: true,
        retryAttempts: 10,
        reportBatchItemFailures: true,
        onFailure: new SqsDlq(streamFailures),
      });
    networkChanges.addEventSource(tableStream());

    // The resource graph: one message group per node, so each node's messages are handled in order.
    const graphQueue = this.workQueue('Graph', 'graph.fifo', dataKey, { queueName: graphQueueName(this.region), fifo: true, visibilityTimeout: Duration.seconds(60) });
    const resourceGraph = new ControlPlaneFunction(this, 'ResourceGraph', {
      entry: 'functions/lifecycle/queues/resource-graph.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.ResourceGraph,
      timeout: Duration.seconds(30),
      settings: { tableName: this.table.tableName, graphQueueUrl: graphQueue.queueUrl },
    });
    this.table.grantReadWriteData(resourceGraph);
    graphQueue.grantSendMessages(resourceGraph);
    this.consume(resourceGraph, graphQueue, 10);
    if (otherRegions.length > 0) {
      // A node of another region is released there: its message is handed to that region's graph queue.
      resourceGraph.addToRolePolicy(
        new PolicyStatement({
          actions: ['sqs:SendMessage', 'sqs:GetQueueUrl'],
          resources: otherRegions.map((region) => this.formatArn({ service: 'sqs', region, resource: graphQueueName(region) })),
        }),
      );
      resourceGraph.addToRolePolicy(this.keysOfOtherRegionsVia('sqs', otherRegions, ['kms:GenerateDataKey', 'kms:Decrypt']));
    }

    // Image content: uploaded by tenants straight to S3 in parts, checked against its SHA-256 by the verifier.
    const imagesBucket = new Bucket(this, 'Images', {
      bucketName: imagesBucketName(this.account, this.region),
      encryption: BucketEncryption.KMS,
      encryptionKey: dataKey,
      bucketKeyEnabled: true,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      lifecycleRules: [{ abortIncompleteMultipartUploadAfter: Duration.days(1) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Lambda's limit: images larger than what streams through SHA-256 in 15 minutes need another verifier.
    const verifyTimeout = Duration.minutes(15);
    // A job stays invisible while a function may still be working on it.
    const longJobVisibility = verifyTimeout.plus(Duration.minutes(1));
    const imageVerifyQueue = this.workQueue('ImageVerify', 'image-verify', dataKey, { visibilityTimeout: longJobVisibility, attempts: 3 });
    const verifyImages = new ControlPlaneFunction(this, 'VerifyImages', {
      entry: 'functions/images/queues/verify-images.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.VerifyImages,
      timeout: verifyTimeout,
      settings: { tableName: this.table.tableName },
    });
    this.table.grantReadWriteData(verifyImages);
    imagesBucket.grantRead(verifyImages);
    this.consume(verifyImages, imageVerifyQueue, 1);

    // Cross-region launches: an image that lives in another region is copied here, part by part
    // inside S3, then checked against its SHA-256 before any VM may start from it.
    // The handler counts attempts and fails the copy itself; the DLQ only catches what it could not record.
    const imageCopyQueue = this.workQueue('ImageCopy', 'image-copy', dataKey, { visibilityTimeout: longJobVisibility });
    const copyImages = new ControlPlaneFunction(this, 'CopyImages', {
      entry: 'functions/images/queues/copy-images.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.CopyImages,
      timeout: verifyTimeout,
      settings: { tableName: this.table.tableName, imagesBucket: imagesBucket.bucketName, imageCopyQueueUrl: imageCopyQueue.queueUrl },
    });
    this.table.grantReadWriteData(copyImages);
    // Releasing a copy deletes its content.
    imagesBucket.grantDelete(resourceGraph, 'images/*');
    imagesBucket.grantReadWrite(copyImages, 'images/*');
    imageCopyQueue.grantSendMessages(copyImages);
    // Sources are the other regions' image buckets, encrypted with those regions' data keys.
    if (otherRegions.length > 0) {
      copyImages.addToRolePolicy(
        new PolicyStatement({
          actions: ['s3:GetObject', 's3:GetObjectAttributes'],
          resources: otherRegions.map((region) => `arn:${this.partition}:s3:::${imagesBucketName(this.account, region)}/images/*`),
        }),
      );
      copyImages.addToRolePolicy(this.keysOfOtherRegionsVia('s3', otherRegions, ['kms:Decrypt']));
    }
    this.consume(copyImages, imageCopyQueue, 1);
    // The table's stream is the copies' outbox: a copy item that appears gets its job here.
    const imageCopyJobs = new ControlPlaneFunction(this, 'ImageCopyJobs', {
      entry: 'functions/images/streams/image-copies.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.ImageCopyJobs,
      timeout: Duration.seconds(30),
      settings: { imageCopyQueueUrl: imageCopyQueue.queueUrl },
    });
    imageCopyQueue.grantSendMessages(imageCopyJobs);
    imageCopyJobs.addEventSource(tableStream());

    const fanOut = new ControlPlaneFunction(this, 'FanOut', {
      entry: 'functions/host-sync/queues/fan-out.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.FanOut,
      timeout: Duration.seconds(10),
      settings: { tableName: this.table.tableName },
    });
    this.table.grantReadData(fanOut);
    fanOut.addToRolePolicy(new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [hostQueueArns] }));
    this.consume(fanOut, fanOutQueue, 10);

    const otherRegionsApiTokenKeys = otherRegions.map((region) => this.formatArn({ service: 'kms', region, resource: 'alias', resourceName: API_TOKEN_KEY_ALIAS.slice('alias/'.length) }));
    // Which agents hold which VM endpoint version: regional like its hosts, written on every
    // endpoint change an agent applies, so kept out of the global table's replication and stream.
    const convergenceTable = new Table(this, 'Convergence', {
      partitionKey: { name: 'vmId', type: AttributeType.STRING },
      sortKey: { name: 'hostId', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: dataKey,
      // Only progress reports: agents acknowledge again what they hold, so nothing here needs keeping.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    new TenantApi(this, 'Api', { egressOpenCidrs: validCidrs(props.egressOpenCidrs ?? []), table: this.table, convergenceTable, hostQueuePrefix, hostQueueArns, hostDlq, shuffleQueuePrefix, shuffleQueueArns, apiTokenKey, otherRegionsApiTokenKeys, hostKeyAttestationKey, hostCredentialKey, vmPairKey, listCursorKey, graphQueue, imagesBucket, imageVerifyQueue });

    // What an operator who issues API tokens needs (`npm run -s issue-token`).
    new ManagedPolicy(this, 'TokenIssuerPolicy', {
      description: 'Lets a Stratoplane operator issue API bearer tokens',
      statements: [new PolicyStatement({ actions: ['kms:Sign', 'kms:DescribeKey'], resources: [apiTokenKey.keyArn] })],
    });

    // What an operator attaches to host machines' role: consume the host's own queue, move shuffle
    // records of the jobs its VMs work for, and unwrap the pair secrets of VMs (the API hands a host
    // only the ciphertexts of VMs it runs). Per host by attribute: the role session carries the
    // principal tag `stratoplane:host-id` (events/host-access.ts); a session without it gets no queue.
    new ManagedPolicy(this, 'HostAgentPolicy', {
      description: 'Lets a Stratoplane host agent consume its own endpoint updates, move its jobs\' shuffle records and check network-pair tokens',
      statements: [
        new PolicyStatement({
          actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl'],
          resources: [this.formatArn({ service: 'sqs', resource: `${hostQueuePrefix}${CALLER_HOST_ID}` })],
        }),
        // Shuffle records go from the sender's host straight to the receiving worker's queue: only
        // between the hosts a job's queues are tagged with (one statement per tag key: any may name it).
        ...SHUFFLE_HOSTS_TAG_KEYS.map(
          (tagKey) =>
            new PolicyStatement({
              actions: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueUrl'],
              resources: [shuffleQueueArns],
              conditions: { StringLike: { [`aws:ResourceTag/${tagKey}`]: `*/${CALLER_HOST_ID}/*` } },
            }),
        ),
        pairKeyStatement(vmPairKey, 'kms:Decrypt'),
      ],
    });
  }

  /**
   * A queue whose consumer settles failures itself (see `consume`), with its dead-letter queue.
   * SQS's own redrive, at twice the handler's attempts, catches only what the handler could not
   * settle: a function that crashed or timed out on the message every time, or the messages a
   * FIFO group held back behind a failing one.
   */
  private workQueue(id: string, deadLetterName: string, dataKey: Key, options: { visibilityTimeout: Duration; fifo?: boolean; queueName?: string; attempts?: number }): Queue {
    const defaults = encryptedQueue(dataKey);
    const dlq = this.deadLetterQueue(`${id}Dlq`, deadLetterName, { ...defaults, fifo: options.fifo });
    const attempts = options.attempts ?? HANDLER_ATTEMPTS;
    const queue = new Queue(this, `${id}Queue`, {
      ...defaults,
      fifo: options.fifo,
      queueName: options.queueName,
      visibilityTimeout: options.visibilityTimeout,
      deadLetterQueue: { queue: dlq, maxReceiveCount: attempts * 2 },
    });
    this.handlerAttempts.set(queue, attempts);
    return queue;
  }

  /** A dead-letter queue, named under the region's prefix so `npm run dead-letters` finds it. */
  private deadLetterQueue(id: string, name: string, props: QueueProps): Queue {
    return new Queue(this, id, { ...props, queueName: `${deadLetterQueuePrefix(this.region)}${name}`, retentionPeriod: Duration.days(14) });
  }

  /**
   * Makes `fn` the consumer of a work queue: batches report their failures item by item, and the
   * handler (functions/triggers/dead-letters.ts) delays each retry and, after the queue's
   * attempts, moves the message to the DLQ itself with the reason.
   */
  private consume(fn: ControlPlaneFunction, queue: Queue, batchSize: number): void {
    const dlq = queue.deadLetterQueue!.queue;
    fn.setting('sourceQueueUrl', queue.queueUrl);
    fn.setting('deadLetterQueueUrl', dlq.queueUrl);
    fn.setting('maxAttempts', String(this.handlerAttempts.get(queue)));
    dlq.grantSendMessages(fn);
    // Pollers scale no further than the function's reserved concurrency: beyond it they would only
    // be throttled, and throttled batches count as receives towards the dead-letter queue.
    fn.addEventSource(new SqsEventSource(queue, { batchSize, reportBatchItemFailures: true, maxConcurrency: fn.reservedConcurrency }));
  }

  /** Use of the other regions' keys, but only by `service` (SQS, S3) on this function's behalf there. */
  private keysOfOtherRegionsVia(service: 'sqs' | 's3', regions: readonly string[], actions: string[]): PolicyStatement {
    return new PolicyStatement({
      actions,
      resources: regions.map((region) => this.formatArn({ service: 'kms', region, resource: 'key', resourceName: '*' })),
      conditions: { StringEquals: { 'kms:ViaService': regions.map((region) => `${service}.${region}.amazonaws.com`) } },
    });
  }

  /** The global table, with a replica in every other region. */
  private globalTable(dataKey: Key, replicaRegions: readonly string[]): TableV2 {
    return new TableV2(this, 'Metadata', {
      tableName: METADATA_TABLE_NAME,
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      globalSecondaryIndexes: [
        { indexName: 'gsi1', partitionKey: { name: 'gsi1pk', type: AttributeType.STRING }, sortKey: { name: 'gsi1sk', type: AttributeType.STRING } },
        { indexName: 'gsi2', partitionKey: { name: 'gsi2pk', type: AttributeType.STRING }, sortKey: { name: 'gsi2sk', type: AttributeType.STRING } },
        { indexName: 'gsi3', partitionKey: { name: 'gsi3pk', type: AttributeType.STRING }, sortKey: { name: 'gsi3sk', type: AttributeType.STRING } },
        { indexName: 'gsi4', partitionKey: { name: 'gsi4pk', type: AttributeType.STRING }, sortKey: { name: 'gsi4sk', type: AttributeType.STRING } },
      ],
      replicas: replicaRegions.map((region) => ({ region })),
      dynamoStream: StreamViewType.NEW_AND_OLD_IMAGES,
      // Records of released VMs expire on their own.
      timeToLiveAttribute: 'expiresAt',
      // A customer managed key per replica would have to exist in every region before the table
      // does, while those regions' stacks need the table: with replicas, the AWS managed KMS key
      // (aws/dynamodb) of each region encrypts its replica.
      encryption: replicaRegions.length === 0 ? TableEncryptionV2.customerManagedKey(dataKey) : TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /**
   * This region's replica of the global table. Its stream's ARN carries a label chosen when the
   * replica was created, so it is read from DynamoDB at deploy time.
   */
  private replicaTable(): ITableV2 {
    const tableArn = this.formatArn({ service: 'dynamodb', resource: 'table', resourceName: METADATA_TABLE_NAME });
    const describe = { service: 'DynamoDB', action: 'DescribeTable', parameters: { TableName: METADATA_TABLE_NAME }, physicalResourceId: PhysicalResourceId.of(tableArn) };
    const stream = new AwsCustomResource(this, 'MetadataReplicaStream', {
      onCreate: describe,
      onUpdate: describe,
      policy: AwsCustomResourcePolicy.fromSdkCalls({ resources: [tableArn] }),
      installLatestAwsSdk: false,
    });
    return TableV2.fromTableAttributes(this, 'Metadata', {
      tableArn,
      tableStreamArn: stream.getResponseField('Table.LatestStreamArn'),
      grantIndexPermissions: true,
    });
  }
}

function validCidrs(cidrs: readonly string[]): string[] {
  const invalid = cidrs.filter((cidr) => !ipv4Cidr.safeParse(cidr).success);
  if (invalid.length > 0) throw new Error(`egressOpenCidrs: ${invalid.join(', ')} ${invalid.length === 1 ? 'is not an IPv4 CIDR' : 'are not IPv4 CIDRs'} (such as 10.20.0.0/16)`);
  return [...cidrs];
}
