import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';

export interface LivenessTableProps {
  /** The region's data key. */
  encryptionKey: IKey;
}

/**
 * Host agents' heartbeats, one item per host: regional like its hosts and written every few
 * seconds, so kept out of the global table's replication and stream.
 */
export class LivenessTable extends Table {
  constructor(scope: Construct, id: string, props: LivenessTableProps) {
    super(scope, id, {
      partitionKey: { name: 'hostId', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.encryptionKey,
      // Agents send a heartbeat again within seconds: nothing here needs keeping.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    acknowledge(this, 'DDB3', 'Only the latest heartbeat per host, sent again within seconds: there is nothing to restore to a point in time');
  }
}
