import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { AttributeType, StreamViewType, TableEncryptionV2, TableV2, type ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { metadataTableName } from '#events/naming.ts';
import { deploymentOf } from '../deployment.ts';
import { acknowledge, acknowledgeWildcards } from '../nag.ts';
import type { ControlPlaneFunction } from './control-plane-function.ts';
import { DeadLetterQueue } from './work-queue.ts';

export interface MetadataTableProps {
  /** Every region the control plane runs in; the first one's stack defines the global table. */
  regions: readonly string[];
  /** The region's data key: it encrypts the table when it has no replicas, and the stream's dead letters. */
  dataKey: IKey;
}

/**
 * The global metadata table as this region sees it, with its stream: the first region's stack
 * defines it (with a replica in every other region), the others read their replica, whose stream
 * only DynamoDB can name. Consumers of the stream subscribe through `streamTo`.
 */
export class MetadataTable extends Construct {
  readonly table: ITableV2;
  /** Stream records a consumer still failed after its retries. */
  readonly streamFailures: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: MetadataTableProps) {
    super(scope, id);
    const [primaryRegion, ...replicaRegions] = props.regions as [string, ...string[]];
    this.table = Stack.of(this).region === primaryRegion ? this.globalTable(props.dataKey, replicaRegions) : this.replicaTable();
    this.streamFailures = new DeadLetterQueue(this, 'StreamFailureDlq', { name: 'stream-failures', encryptionKey: props.dataKey });
    acknowledge(
      this.streamFailures,
      'SQS3',
      "It is a dead-letter queue: the stream consumers' on-failure destination (cdk-nag only recognises redrive targets)",
    );
    // On the stack: functions of every concern hold grants on the table.
    acknowledgeWildcards(
      Stack.of(this),
      'Grants on the metadata table also cover its global secondary indexes (gsi1–gsi5), which list, graph, placement and address queries read',
      {
        resources: [`${this.table.tableArn}/index/*`],
      },
    );
  }

  /** Makes `fn` a consumer of the table's stream: failures reported per record, retries bounded, then the DLQ. */
  streamTo(fn: ControlPlaneFunction): void {
    fn.addEventSource(
      new DynamoEventSource(this.table, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(0),
        bisectBatchOnError: true,
        retryAttempts: 10,
        reportBatchItemFailures: true,
        onFailure: new SqsDlq(this.streamFailures),
      }),
    );
  }

  /** The global table, with a replica in every other region. */
  private globalTable(dataKey: IKey, replicaRegions: readonly string[]): TableV2 {
    return new TableV2(this, 'Metadata', {
      tableName: metadataTableName(deploymentOf(this)),
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      sortKey: { name: 'sk', type: AttributeType.STRING },
      globalSecondaryIndexes: [
        { indexName: 'gsi1', partitionKey: { name: 'gsi1pk', type: AttributeType.STRING }, sortKey: { name: 'gsi1sk', type: AttributeType.STRING } },
        { indexName: 'gsi2', partitionKey: { name: 'gsi2pk', type: AttributeType.STRING }, sortKey: { name: 'gsi2sk', type: AttributeType.STRING } },
        { indexName: 'gsi3', partitionKey: { name: 'gsi3pk', type: AttributeType.STRING }, sortKey: { name: 'gsi3sk', type: AttributeType.STRING } },
        { indexName: 'gsi4', partitionKey: { name: 'gsi4pk', type: AttributeType.STRING }, sortKey: { name: 'gsi4sk', type: AttributeType.STRING } },
        // Placement's: a region's shard of hosts, by free capacity (a number, moved by the same writes as each host's VM count).
        { indexName: 'gsi5', partitionKey: { name: 'gsi5pk', type: AttributeType.STRING }, sortKey: { name: 'gsi5sk', type: AttributeType.NUMBER } },
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
      // Kept, replicas and all, when the stack is deleted or the table replaced; deleted with a first
      // deploy that rolls back, so that a retry can create it again. DynamoDB's own deletion
      // protection would refuse that delete (and fail the rollback): docs/deployment.md says how to
      // turn it on once the first deploy succeeded.
      removalPolicy: RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    });
  }

  /**
   * This region's replica of the global table. Its stream's ARN carries a label chosen when the
   * replica was created, so it is read from DynamoDB at deploy time.
   */
  private replicaTable(): ITableV2 {
    const tableName = metadataTableName(deploymentOf(this));
    const tableArn = Stack.of(this).formatArn({ service: 'dynamodb', resource: 'table', resourceName: tableName });
    const describe = {
      service: 'DynamoDB',
      action: 'DescribeTable',
      parameters: { TableName: tableName },
      physicalResourceId: PhysicalResourceId.of(tableArn),
    };
    const stream = new AwsCustomResource(this, 'MetadataReplicaStream', {
      onCreate: describe,
      onUpdate: describe,
      policy: AwsCustomResourcePolicy.fromSdkCalls({ resources: [tableArn] }),
      installLatestAwsSdk: false,
    });
    // The provider function CDK shares between a stack's AwsCustomResources (one DescribeTable at deploy time).
    const provider = Stack.of(this).node.findChild(AwsCustomResource.PROVIDER_FUNCTION_UUID.replace(/-/g, '').replace(/^/, 'AWS'));
    acknowledge(
      provider,
      'IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      "CDK's custom resource provider: AWS's basic execution policy only lets it write its logs",
    );
    return TableV2.fromTableAttributes(this, 'Metadata', {
      tableArn,
      tableStreamArn: stream.getResponseField('Table.LatestStreamArn'),
      grantIndexPermissions: true,
    });
  }
}
