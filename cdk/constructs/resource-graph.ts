import { Duration, Stack } from 'aws-cdk-lib';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { graphQueueName } from '#events/naming.ts';
import { deploymentOf } from '../deployment.ts';
import { ControlPlaneFunction } from './control-plane-function.ts';
import { CONSUMER_CONCURRENCY } from './consumer-concurrency.ts';
import { grantOtherRegionsKeysVia } from './keys.ts';
import { DeadLetterQueue, WorkQueue } from './work-queue.ts';

export interface ResourceGraphProps {
  table: ITableV2;
  /** The region's data key. */
  dataKey: IKey;
  /** The control plane's other regions, whose graph queues take the releases of their own nodes. */
  otherRegions: readonly string[];
}

/**
 * The resource graph: projects and what they hold are released node by node, in order, through
 * a FIFO queue with one message group per node, across regions when a node lives elsewhere.
 */
export class ResourceGraph extends Construct {
  /** Where a node's messages wait, in order (deleting a project addresses a release here). */
  readonly queue: WorkQueue;
  /** The consumer that walks the graph. */
  readonly handler: ControlPlaneFunction;

  constructor(scope: Construct, id: string, props: ResourceGraphProps) {
    super(scope, id);
    const { table, dataKey, otherRegions } = props;
    const stack = Stack.of(this);
    const deployment = deploymentOf(this);
    this.queue = new WorkQueue(this, 'GraphQueue', {
      dataKey,
      deadLetters: new DeadLetterQueue(this, 'GraphDlq', { name: 'graph.fifo', encryptionKey: dataKey, fifo: true }),
      queueName: graphQueueName(stack.region, deployment),
      fifo: true,
      visibilityTimeout: Duration.seconds(60),
    });
    this.handler = new ControlPlaneFunction(this, 'ResourceGraph', {
      entry: 'functions/lifecycle/queues/resource-graph.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.ResourceGraph,
      timeout: Duration.seconds(30),
      settings: { tableName: table.tableName, graphQueueUrl: this.queue.queueUrl, deployment },
    });
    table.grantReadWriteData(this.handler);
    this.queue.grantSendMessages(this.handler);
    this.queue.consumedBy(this.handler, 10);
    if (otherRegions.length > 0) {
      // A node of another region is released there: its message is handed to that region's graph queue.
      this.handler.addToRolePolicy(
        new PolicyStatement({
          actions: ['sqs:SendMessage', 'sqs:GetQueueUrl'],
          resources: otherRegions.map((region) => stack.formatArn({ service: 'sqs', region, resource: graphQueueName(region, deployment) })),
        }),
      );
      grantOtherRegionsKeysVia(this.handler, 'sqs', otherRegions, ['kms:GenerateDataKey', 'kms:Decrypt']);
    }
  }
}
