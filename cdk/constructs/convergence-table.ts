import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';

export interface ConvergenceTableProps {
  /** The region's data key. */
  encryptionKey: IKey;
}

/**
 * Which agents hold which VM endpoint version: regional like its hosts, written on every
 * endpoint change an agent applies, so kept out of the global table's replication and stream.
 */
export class ConvergenceTable extends Table {
  constructor(scope: Construct, id: string, props: ConvergenceTableProps) {
    super(scope, id, {
      partitionKey: { name: 'vmId', type: AttributeType.STRING },
      sortKey: { name: 'hostId', type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      encryption: TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: props.encryptionKey,
      // Only progress reports: agents acknowledge again what they hold, so nothing here needs keeping.
      removalPolicy: RemovalPolicy.DESTROY,
    });
    acknowledge(
      this,
      'DDB3',
      'Only progress reports, not a record: agents acknowledge again what they hold, so there is nothing to restore to a point in time',
    );
  }
}
