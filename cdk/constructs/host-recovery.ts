import { Duration } from 'aws-cdk-lib';
import type { ITable, ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { ControlPlaneFunction } from './control-plane-function.ts';
import { pairKeyStatement } from './keys.ts';

export interface HostRecoveryProps {
  table: ITableV2;
  /** Host agents' heartbeats: which hosts are down. */
  livenessTable: ITable;
  /** A VM restarted elsewhere gets a new pair secret, as in any move. */
  vmPairKey: IKey;
}

/**
 * Every minute, restarts elsewhere the VMs of down hosts that asked for it (`onHostFailure:
 * restart`). One sweep at a time (reserved concurrency 1): two would race for the same VMs, which
 * their conditions would settle, but for nothing.
 */
export class HostRecovery extends Construct {
  constructor(scope: Construct, id: string, props: HostRecoveryProps) {
    super(scope, id);
    const sweep = new ControlPlaneFunction(this, 'RecoverHosts', {
      entry: 'functions/compute/schedules/recover-hosts.ts',
      reservedConcurrentExecutions: 1,
      timeout: Duration.seconds(50),
      settings: { tableName: props.table.tableName, livenessTableName: props.livenessTable.tableName, vmPairKeyArn: props.vmPairKey.keyArn },
    });
    props.table.grantReadWriteData(sweep);
    props.livenessTable.grantReadData(sweep);
    sweep.addToRolePolicy(pairKeyStatement(props.vmPairKey, 'kms:GenerateDataKeyWithoutPlaintext'));
    new Rule(this, 'EveryMinute', {
      description: 'Restarts elsewhere the VMs of hosts that are down (onHostFailure: restart)',
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [new LambdaFunction(sweep, { retryAttempts: 0 })],
    });
  }
}
