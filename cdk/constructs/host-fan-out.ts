import { Duration, Stack } from 'aws-cdk-lib';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';
import { ControlPlaneFunction } from './control-plane-function.ts';
import { CONSUMER_CONCURRENCY } from './consumer-concurrency.ts';
import type { MetadataTable } from './metadata-table.ts';
import { QueueFamily } from './queue-family.ts';
import { DeadLetterQueue, WorkQueue } from './work-queue.ts';

export interface HostFanOutProps {
  /** Its stream carries the endpoint changes; the fan-out reads who must hear of them. */
  metadata: MetadataTable;
  /** The region's data key. */
  dataKey: IKey;
}

/**
 * How endpoint changes reach host agents: the table's stream feeds a function that queues each
 * change once, and the fan-out consumer turns it into a message on the queue of every host that
 * must apply it. Host queues are made when hosts register, so only their family is known here.
 */
export class HostFanOut extends Construct {
  /** Every host's queue (created at registration). */
  readonly hostQueues: QueueFamily;
  /** Where host queues move what their agent could not handle. */
  readonly hostDlq: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: HostFanOutProps) {
    super(scope, id);
    const { metadata, dataKey } = props;
    const table = metadata.table;
    // Six times the fan-out function's timeout (AWS's advice); also how long a change can wait after
    // its handler died mid-batch, so it stays short (agents catch up sooner when they lose contact).
    const fanOutQueue = new WorkQueue(this, 'FanOutQueue', {
      dataKey,
      deadLetters: new DeadLetterQueue(this, 'FanOutDlq', { name: 'fan-out', encryptionKey: dataKey }),
      visibilityTimeout: Duration.seconds(60),
    });
    // Host queues are created at registration, so they use SQS-managed keys: agents need no KMS grant.
    this.hostDlq = new DeadLetterQueue(this, 'HostDlq', { name: 'host' });
    acknowledge(this.hostDlq, 'SQS3', 'It is the dead-letter queue of every host queue (their redrive policy names it when registration makes them)');
    this.hostQueues = new QueueFamily(Stack.of(this), 'host');

    const networkChanges = new ControlPlaneFunction(this, 'NetworkChanges', {
      entry: 'functions/host-sync/streams/network-changes.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.NetworkChanges,
      timeout: Duration.seconds(30),
      settings: { fanOutQueueUrl: fanOutQueue.queueUrl, tableName: table.tableName },
    });
    fanOutQueue.grantSendMessages(networkChanges);
    // Whether the fast path delivered an endpoint change already: one read of the batch's slots.
    table.grant(networkChanges, 'dynamodb:BatchGetItem');
    metadata.streamTo(networkChanges);

    const fanOut = new ControlPlaneFunction(this, 'FanOut', {
      entry: 'functions/host-sync/queues/fan-out.ts',
      reservedConcurrentExecutions: CONSUMER_CONCURRENCY.FanOut,
      timeout: Duration.seconds(10),
      settings: { tableName: table.tableName },
    });
    table.grantReadData(fanOut);
    this.hostQueues.grant(fanOut, 'sqs:SendMessage');
    fanOutQueue.consumedBy(fanOut, 10);
  }
}
